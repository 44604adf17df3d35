"""Instance spans -> framed TFRecords (records.py / _records.c), checked on the output bytes.

Replaces the tests of the numpy modules it supersedes (masking.py, example_encoder.py,
tfrecord.py): the same behaviour is asserted here on what build_records writes —
BERT's masked-LM proportions, exclusions and whole-word rule, protobuf's
deterministic serialisation, and TFRecordWriter's framing.
"""
import functools
import struct

import google_crc32c
import numpy as np
import pytest
import tensorflow as tf

from components.pretraining_data import records, schema
from components.pretraining_data.bucket import VocabInfo
from components.pretraining_data.options import PretrainingDataOptions

CLS, SEP, MASK = 2, 3, 4  # ids of [CLS] [SEP] [MASK] in _vocab()
VOCAB = 1000
FIRST_PIECE = 500  # in whole-word tests, ids >= 500 are "##" pieces


@functools.lru_cache(maxsize=None)
def _vocab(size, first_piece=None):
    """[PAD] [UNK] [CLS] [SEP] [MASK] w5 w6 ...; ids >= first_piece are "##" pieces."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [("##w%d" if first_piece is not None and i >= first_piece else "w%d") % i
               for i in range(len(tokens), size)]
    return VocabInfo(tokens)


def _options(seq, pred, prob=0.15, wwm=False):
    return PretrainingDataOptions(max_seq_length=seq, max_predictions_per_seq=pred,
                                  masked_lm_prob=prob, do_whole_word_mask=wwm)


def _masked_crc(data):
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) % 2**32


def _split(blob):
    """Splits framed bytes into records, checking both CRCs independently of _records.c."""
    out, i = [], 0
    while i < len(blob):
        header = blob[i:i + 8]
        (n,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", blob[i + 8:i + 12])[0] == _masked_crc(header)
        data = blob[i + 12:i + 12 + n]
        assert len(data) == n
        assert struct.unpack("<I", blob[i + 12 + n:i + 16 + n])[0] == _masked_crc(data)
        out.append(data)
        i += 16 + n
    assert i == len(blob)
    return out


def _parse(blob, seq, pred):
    recs = _split(blob)
    parsed = tf.io.parse_example(tf.constant(recs), schema.feature_spec(seq, pred))
    return {k: v.numpy() for k, v in parsed.items()}


def _layout(tokens, spans, seq):
    """Expected unmasked [CLS] A [SEP] B [SEP] 0..., segment ids, lengths (the old assemble)."""
    ids = np.zeros((len(spans), seq), np.int64)
    seg = np.zeros((len(spans), seq), np.int64)
    lengths = np.zeros(len(spans), np.int64)
    for r, (a0, a1, b0, b1, _) in enumerate(spans):
        row = [CLS, *tokens[a0:a1], SEP, *tokens[b0:b1], SEP]
        ids[r, :len(row)] = row
        seg[r, a1 - a0 + 2:len(row)] = 1
        lengths[r] = len(row)
    return ids, seg, lengths


def _random_instances(n, seq, rng, vocab_size=VOCAB, low=10, min_len=10):
    """n instances of total length in [min_len, seq] (lengths 10, 30, ..., 110 always appear)."""
    lengths = rng.integers(min_len, seq + 1, n)
    ties = [x for x in (10, 30, 50, 70, 90, 110) if min_len <= x <= seq]
    lengths[:len(ties)] = ties  # length * 0.15 = x.5: Python 3 rounds these half to even
    sep_a = rng.integers(2, lengths - 2)  # index of the first [SEP]
    len_a = sep_a - 1
    len_b = lengths - 3 - len_a
    tokens = rng.integers(low, vocab_size, int((lengths - 3).sum())).astype(np.int32)
    starts = np.concatenate([[0], np.cumsum(lengths - 3)[:-1]])
    spans = np.stack([starts, starts + len_a, starts + len_a, starts + len_a + len_b,
                      rng.integers(0, 2, n)], axis=1).astype(np.int64)
    return tokens, spans


def _num_to_predict(length, prob, pred):
    return min(pred, max(1, int(round(length * prob))))


# ---------------------------------------------------------------- bytes


def _example(f):
    ints = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=v))  # noqa: E731
    return tf.train.Example(features=tf.train.Features(feature={
        "input_ids": ints(f["input_ids"]), "input_mask": ints(f["input_mask"]),
        "segment_ids": ints(f["segment_ids"]),
        "masked_lm_positions": ints(f["masked_lm_positions"]),
        "masked_lm_ids": ints(f["masked_lm_ids"]),
        "masked_lm_weights": tf.train.Feature(
            float_list=tf.train.FloatList(value=f["masked_lm_weights"])),
        "next_sentence_labels": ints(f["next_sentence_labels"])}))


def _values(example):
    out = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[name] = list(getattr(feature, kind).value)
        assert kind == ("float_list" if name == "masked_lm_weights" else "int64_list")
    return out


def test_bytes_equal_deterministic_serialisation_and_tfrecord_writer(tmp_path):
    rng = np.random.default_rng(0)
    big = 2**21 + 64  # ids up to 2**21 + 63 need 4-byte varints
    vocab = _vocab(big)
    # Ids of every varint width: 1 (< 2**7), 2 (< 2**14), 3 (< 2**21), 4 (>= 2**21), and the
    # width edges themselves, in rows whose fields need 1-, 2- and 3-byte length prefixes.
    edges = [5, 127, 128, 16383, 16384, 2**21 - 1, 2**21, big - 1]
    pools = [rng.integers(5, 128, 300), rng.integers(128, 2**14, 300),
             rng.integers(2**14, 2**21, 300), rng.integers(2**21, big, 300),
             rng.integers(5, big, 12000)]
    tokens = np.concatenate([edges] + pools).astype(np.int32)
    o = np.cumsum([0, len(edges)] + [len(p) for p in pools])
    cases = []
    for seq, pred, span_rows in [
        (8, 2, [[0, 2, 2, 5, 0], [5, 8, 8, 9, 1], [o[1], o[1] + 1, o[2], o[2] + 1, 1]]),
        (128, 20, [[0, 8, o[1], o[1] + 100, 1],            # edges + 1-byte ids
                   [o[2], o[2] + 60, o[3], o[3] + 60, 0],  # 2- and 3-byte ids
                   [o[4], o[4] + 125, o[4], o[4], 1],      # 4-byte ids, empty B
                   [o[1], o[1] + 1, o[1] + 1, o[1] + 2, 0]]),  # short: mostly padding
        (6000, 20, [[o[5], o[5] + 5900, o[4], o[4] + 90, 0],  # input_ids > 16 KB
                    [o[5] + 5900, o[5] + 11000, o[1], o[1] + 10, 1]]),
    ]:
        spans = np.array(span_rows, np.int64)
        blob, num_masked = records.build_records(tokens, spans, 7, vocab, _options(seq, pred))
        cases.append((seq, pred, spans, blob, num_masked))

    all_records, widths, labels = [], set(), set()
    for seq, pred, spans, blob, num_masked in cases:
        recs = _split(blob)
        assert len(recs) == len(spans)
        ids, seg, lengths = _layout(tokens, spans, seq)
        total_masked = 0
        for r, record in enumerate(recs):
            example = tf.train.Example.FromString(record)
            # Protobuf's deterministic serialisation, byte for byte ...
            assert example.SerializeToString(deterministic=True) == record
            values = _values(example)
            assert sorted(values) == sorted(schema.FEATURE_NAMES)
            # ... and the same bytes as an Example built independently from the values.
            assert _example(values).SerializeToString(deterministic=True) == record
            assert values["next_sentence_labels"] == [spans[r, 4]]
            assert values["input_mask"] == [1] * lengths[r] + [0] * (seq - lengths[r])
            assert values["segment_ids"] == seg[r].tolist()
            w = np.array(values["masked_lm_weights"])
            pos = np.array(values["masked_lm_positions"])[w > 0]
            assert (np.array(values["masked_lm_ids"])[w > 0] == ids[r, pos]).all()
            keep = np.ones(seq, bool)
            keep[pos] = False
            assert (np.array(values["input_ids"])[keep] == ids[r, keep]).all()
            total_masked += int(w.sum())
            widths.update((int(v).bit_length() - 1) // 7 for v in ids[r] if v)
            labels.add(values["next_sentence_labels"][0])
        assert num_masked == total_masked
        all_records += recs
    assert widths == {0, 1, 2, 3}  # varints of 1, 2, 3 and 4 bytes
    assert len(cases[2][3]) > 2 * 6000 * 3 + 16384  # 3-byte length prefixes
    assert labels == {0, 1}

    # The framed blob is the file TFRecordWriter writes for the same records.
    blob = b"".join(c[3] for c in cases)
    ref = str(tmp_path / "ref.tfrecord")
    with tf.io.TFRecordWriter(ref) as writer:
        for record in all_records:
            writer.write(record)
    assert blob == open(ref, "rb").read()
    # TFRecordDataset reads it back (it verifies the CRCs), also as two files' blobs joined
    # in another order.
    ours = tmp_path / "ours.tfrecord"
    ours.write_bytes(cases[2][3] + cases[0][3] + cases[1][3])
    back = [r.numpy() for r in tf.data.TFRecordDataset(str(ours))]
    assert back == _split(cases[2][3]) + _split(cases[0][3]) + _split(cases[1][3])

    # No spans: no bytes.
    assert records.build_records(tokens, np.zeros((0, 5), np.int64), 7, vocab,
                                 _options(8, 2)) == (b"", 0)


def test_masked_crc32c_is_tfrecords():
    rng = np.random.default_rng(1)
    for n in [0, 1, 7, 8, 9, 129, 700, 70000]:
        data = rng.bytes(n)
        assert records.masked_crc32c(data) == _masked_crc(data)
    assert records.masked_crc32c(b"") == 0xA282EAD8
    assert records.masked_crc32c(memoryview(b"123456789")) == _masked_crc(b"123456789")


# ---------------------------------------------------------------- schema


def test_parse_example_shapes_and_dtypes():
    spec = schema.feature_spec(128, 20)
    assert tuple(spec) == schema.FEATURE_NAMES
    rng = np.random.default_rng(2)
    tokens, spans = _random_instances(9, 128, rng)
    blob, _ = records.build_records(tokens, spans, 1, _vocab(VOCAB), _options(128, 20))
    parsed = tf.io.parse_example(tf.constant(_split(blob)), spec)
    for name in ("input_ids", "input_mask", "segment_ids"):
        assert parsed[name].shape == [9, 128] and parsed[name].dtype == tf.int64
    for name in ("masked_lm_positions", "masked_lm_ids"):
        assert parsed[name].shape == [9, 20] and parsed[name].dtype == tf.int64
    assert parsed["masked_lm_weights"].shape == [9, 20]
    assert parsed["masked_lm_weights"].dtype == tf.float32
    assert parsed["next_sentence_labels"].shape == [9, 1]
    assert parsed["next_sentence_labels"].dtype == tf.int64
    assert parsed["next_sentence_labels"].numpy()[:, 0].tolist() == spans[:, 4].tolist()


# ---------------------------------------------------------------- masking


def test_proportions_exclusions_and_layout():
    rng = np.random.default_rng(0)
    n, seq, pred = 4000, 128, 20
    tokens, spans = _random_instances(n, seq, rng)
    blob, num_masked = records.build_records(tokens, spans, 3, _vocab(VOCAB), _options(seq, pred))
    out = _parse(blob, seq, pred)
    ids, seg, lengths = _layout(tokens, spans, seq)
    w = out["masked_lm_weights"]
    assert set(np.unique(w)) <= {0.0, 1.0}
    n_pred = w.sum(axis=1).astype(int)
    # Plenty of candidates: exactly min(P, max(1, round(len * 0.15))), Python 3 rounding.
    expected = np.array([_num_to_predict(int(x), 0.15, pred) for x in lengths])
    assert (n_pred == expected).all()
    assert expected[lengths == 30].tolist() and (expected[lengths == 30] == 4).all()  # 4.5 -> 4
    assert (expected[lengths == 50] == 8).all()  # 7.5 -> 8
    assert num_masked == n_pred.sum()
    assert abs(n_pred.sum() / lengths.sum() - 0.15) < 0.01
    # Layout untouched by masking.
    assert (out["segment_ids"] == seg).all()
    assert (out["input_mask"] == (np.arange(seq)[None] < lengths[:, None])).all()
    assert (out["next_sentence_labels"][:, 0] == spans[:, 4]).all()
    rows, slots = np.nonzero(w)
    pos = out["masked_lm_positions"][rows, slots]
    orig = ids[rows, pos]
    assert (out["masked_lm_ids"][rows, slots] == orig).all()
    assert not np.isin(orig, [CLS, SEP, 0]).any()  # never [CLS], [SEP] or padding
    assert (pos < lengths[rows]).all() and (pos > 0).all()
    # Real slots first, positions strictly ascending; padding slots are 0 with weight 0.
    assert (np.diff(w, axis=1) <= 0).all()
    p = np.where(w > 0, out["masked_lm_positions"], 10**6 + np.arange(pred))
    assert (np.diff(p, axis=1) > 0).all()
    assert (out["masked_lm_positions"][w == 0] == 0).all()
    assert (out["masked_lm_ids"][w == 0] == 0).all()
    new = out["input_ids"][rows, pos]
    is_mask, is_kept = new == MASK, new == orig
    frac_mask, frac_kept = is_mask.mean(), is_kept.mean()
    frac_random = 1 - frac_mask - frac_kept
    assert len(new) > 30_000  # 3 sigma of a 10% rate is ~0.45%
    assert abs(frac_mask - 0.8) < 0.01 and abs(frac_kept - 0.1) < 0.01
    assert abs(frac_random - 0.1) < 0.01
    # Random replacements are uniform over the whole vocabulary.
    random_ids = new[~is_mask & ~is_kept]
    assert random_ids.min() >= 0 and random_ids.max() < VOCAB
    assert abs(random_ids.mean() - (VOCAB - 1) / 2) < 25
    assert (random_ids < 10).any()  # ids not in the input can come out too
    # Only chosen positions change.
    changed = out["input_ids"] != ids
    chosen = np.zeros_like(changed)
    chosen[rows, pos] = True
    assert not (changed & ~chosen).any()


def test_num_to_predict_rule():
    # min(20, max(1, round(n * 0.15))) with Python 3 rounding (half to even), n counting
    # [CLS] and both [SEP]; every token a candidate but those three.
    lengths = [4, 5, 10, 13, 17, 30, 50, 100, 128, 500]
    tokens = np.arange(10, 510, dtype=np.int32)
    spans = np.array([[0, n - 3, 0, 0, 0] for n in lengths], np.int64)
    blob, _ = records.build_records(tokens, spans, 0, _vocab(VOCAB), _options(512, 20))
    n_pred = _parse(blob, 512, 20)["masked_lm_weights"].sum(axis=1).astype(int)
    assert n_pred.tolist() == [_num_to_predict(n, 0.15, 20) for n in lengths]
    assert n_pred.tolist() == [1, 1, 2, 2, 3, 4, 8, 15, 19, 20]


def test_few_candidates_and_max_predictions_cap():
    vocab = _vocab(VOCAB)
    tokens = np.array([50, 51], np.int32)
    # A and B of one token each: only two maskable tokens, whatever the prob and cap.
    spans = np.array([[0, 1, 1, 2, 0]] * 50, np.int64)
    blob, num_masked = records.build_records(tokens, spans, 1, vocab, _options(8, 3, prob=1.0))
    out = _parse(blob, 8, 3)
    assert num_masked == 100
    assert (out["masked_lm_weights"] == [1, 1, 0]).all()
    assert (out["masked_lm_positions"] == [1, 3, 0]).all()
    assert (out["masked_lm_ids"] == [50, 51, 0]).all()
    # No candidates at all ([CLS] [SEP] [SEP]): no predictions.
    blob, num_masked = records.build_records(tokens, np.array([[0, 0, 2, 2, 1]]), 1, vocab,
                                             _options(8, 3, prob=1.0))
    out = _parse(blob, 8, 3)
    assert num_masked == 0 and (out["masked_lm_weights"] == 0).all()
    assert out["input_ids"][0].tolist() == [CLS, SEP, SEP, 0, 0, 0, 0, 0]
    # Long sequences, small P: the cap wins (round(128 * 0.15) = 19 > 5; 128 * 1.0 > 20).
    rng = np.random.default_rng(4)
    tokens = rng.integers(10, VOCAB, 125 * 200).astype(np.int32)
    spans = np.array([[125 * i, 125 * i + 60, 125 * i + 60, 125 * (i + 1), i % 2]
                      for i in range(200)], np.int64)
    for pred, prob in [(5, 0.15), (20, 1.0), (1, 0.15)]:
        blob, num_masked = records.build_records(tokens, spans, 2, vocab,
                                                 _options(128, pred, prob=prob))
        out = _parse(blob, 128, pred)
        assert (out["masked_lm_weights"] == 1).all() and num_masked == 200 * pred
        assert (np.diff(out["masked_lm_positions"], axis=1) > 0).all()
        assert not np.isin(out["masked_lm_positions"], [0, 61, 127]).any()  # [CLS]/[SEP]
    # [CLS]/[SEP] ids inside A and B are not candidates either:
    # [CLS] [CLS] [SEP] [SEP] 60 [SEP] [SEP].
    tokens = np.array([CLS, SEP, 60, SEP], np.int32)
    blob, _ = records.build_records(tokens, np.array([[0, 2, 2, 4, 0]]), 5, vocab,
                                    _options(8, 5, prob=1.0))
    out = _parse(blob, 8, 5)
    assert out["masked_lm_positions"][0].tolist() == [4, 0, 0, 0, 0]


def test_whole_word_masking_masks_all_pieces():
    rng = np.random.default_rng(2)
    n, seq, pred = 2000, 64, 20
    tokens, spans = _random_instances(n, seq, rng)
    vocab = _vocab(VOCAB, FIRST_PIECE)
    is_cont = vocab.is_continuation
    assert is_cont[FIRST_PIECE:].all() and not is_cont[:FIRST_PIECE].any()
    blob, _ = records.build_records(tokens, spans, 9, vocab, _options(seq, pred, wwm=True))
    out = _parse(blob, seq, pred)
    ids, _, lengths = _layout(tokens, spans, seq)
    w = out["masked_lm_weights"]
    chosen = np.zeros(ids.shape, bool)
    rows, slots = np.nonzero(w)
    chosen[rows, out["masked_lm_positions"][rows, slots]] = True
    candidate = (np.arange(seq)[None] < lengths[:, None]) & ~np.isin(ids, [CLS, SEP])
    checked = 0
    for r in range(n):
        prev = None  # previous candidate position (the original skips [CLS]/[SEP])
        for j in np.nonzero(candidate[r])[0]:
            if prev is not None and is_cont[ids[r, j]]:
                assert chosen[r, j] == chosen[r, prev]
                checked += chosen[r, j]
            prev = j
    assert checked > 1000
    n_max = np.array([_num_to_predict(int(x), 0.15, pred) for x in lengths])
    assert (w.sum(axis=1) <= n_max).all()
    assert not (chosen & ~candidate).any()
    positions = out["masked_lm_positions"][rows, slots]
    assert (out["masked_lm_ids"][rows, slots] == ids[rows, positions]).all()


def test_whole_word_piece_after_sep_joins_previous_group():
    # [CLS] w ##x [SEP] ##y z [SEP]: candidate groups {1, 2, 4} ("##y" right after [SEP]
    # joins the word before it, as in the original) and {5}. With 3 to predict, groups
    # go in random order and one that would overshoot is skipped: {1, 2, 4} or {5}, never
    # a part of the word.
    vocab = _vocab(VOCAB, FIRST_PIECE)
    tokens = np.array([20, 600, 601, 30], np.int32)
    spans = np.array([[0, 2, 2, 4, 0]] * 400, np.int64)
    options = _options(8, 5, prob=3 / 7, wwm=True)
    blob, _ = records.build_records(tokens, spans, 11, vocab, options)
    out = _parse(blob, 8, 5)
    got = {tuple(p[w > 0]) for p, w in zip(out["masked_lm_positions"],
                                            out["masked_lm_weights"])}
    assert got == {(1, 2, 4), (5,)}
    # Without whole-word masking the same instances mask any 3 single tokens.
    blob, _ = records.build_records(tokens, spans, 11, vocab, _options(8, 5, prob=3 / 7))
    out = _parse(blob, 8, 5)
    got = {tuple(p[w > 0]) for p, w in zip(out["masked_lm_positions"],
                                            out["masked_lm_weights"])}
    assert got == {(1, 2, 4), (1, 2, 5), (1, 4, 5), (2, 4, 5)}
    # A "##" piece first among the candidates starts its own group: [CLS] ##a [SEP] ##b w [SEP]
    # has groups {1, 3} and {4}.
    tokens = np.array([600, 601, 20], np.int32)
    blob, _ = records.build_records(tokens, np.array([[0, 1, 1, 3, 1]] * 400, np.int64), 12,
                                    vocab, _options(6, 5, prob=2 / 6, wwm=True))
    out = _parse(blob, 6, 5)
    got = {tuple(p[w > 0]) for p, w in zip(out["masked_lm_positions"],
                                            out["masked_lm_weights"])}
    assert got == {(1, 3), (4,)}


# ---------------------------------------------------------------- determinism


def test_deterministic_and_row_indexed():
    rng = np.random.default_rng(5)
    tokens, spans = _random_instances(300, 128, rng)
    vocab, options = _vocab(VOCAB, FIRST_PIECE), _options(128, 20, wwm=True)
    blob, num_masked = records.build_records(tokens, spans, 42, vocab, options)
    assert records.build_records(tokens, spans, 42, vocab, options) == (blob, num_masked)
    other, _ = records.build_records(tokens, spans, 43, vocab, options)
    assert other != blob and len(_split(other)) == 300
    assert records.build_records(tokens, spans, 2**64 - 1, vocab, options)[0] != blob
    # Record i depends only on (seed, i): a prefix of the spans gives a prefix of the bytes.
    recs = _split(blob)
    for k in (1, 17, 299):
        prefix, _ = records.build_records(tokens, spans[:k], 42, vocab, options)
        assert blob.startswith(prefix) and _split(prefix) == recs[:k]
    # ... and not on the other rows' spans.
    changed = spans.copy()
    changed[0] = [0, 5, 5, 10, 0]
    changed_recs = _split(records.build_records(tokens, changed, 42, vocab, options)[0])
    assert changed_recs[0] != recs[0] and changed_recs[1:] == recs[1:]


def test_largest_records_fit_the_output_buffer():
    """Records are written straight into a bytes object sized by a bound from the id and
    position ranges; the longest possible records (every id the largest, every position
    masked, vocab sizes at varint-length boundaries) fit it and parse back whole."""
    from components.pretraining_data import _records

    for vocab_size in (2**7, 2**7 + 1, 2**14 + 1, 2**21 + 1, 2**28 + 1):
        for seq in (8, 128, 512):
            length = seq - 3
            tokens = np.full(2 * length, vocab_size - 1, np.int32)
            spans = np.array([[0, length // 2, length // 2, length, 1],
                              [length, length + 1, length + 1, 2 * length, 0]], np.int64)
            blob, num_masked = _records.build_records(
                tokens, spans, 7, seq, seq, 1.0, vocab_size, 0, 1, vocab_size - 1, None)
            assert num_masked == 2 * (seq - 3)  # all but [CLS] and the two [SEP]s
            assert len(_split(blob)) == 2
        parsed = _parse(blob, seq, seq)
        assert parsed["input_ids"].max() == vocab_size - 1
        assert parsed["masked_lm_positions"].max() == seq - 2


# ---------------------------------------------------------------- errors


def test_errors_name_the_span():
    vocab, options = _vocab(VOCAB), _options(16, 5)
    tokens = np.arange(10, 40, dtype=np.int32)
    good = [[0, 3, 3, 6, 0], [6, 8, 8, 12, 1]]

    def build(bad, toks=tokens, opts=options):
        return records.build_records(toks, np.array(good + [bad], np.int64), 0, vocab, opts)

    for bad in ([0, 3, 3, 31, 0],    # past the end of the tokens
                [-1, 3, 3, 6, 0],    # negative start
                [5, 3, 3, 6, 0],     # reversed
                [28, 29, 29, 31, 1]):
        with pytest.raises(ValueError, match=r"span 2 is out of the 30 tokens"):
            build(bad)
    # 7 + 7 + 3 = 17 > max_seq_length 16 (A + B may be at most 13).
    with pytest.raises(ValueError, match=r"span 2: .* longer than max_seq_length=16"):
        build([0, 7, 7, 14, 0])
    assert len(_split(build([0, 7, 7, 13, 0])[0])) == 3
    for value in (VOCAB, VOCAB + 5, -1):
        toks = tokens.copy()
        toks[20] = value
        with pytest.raises(ValueError,
                           match=r"span 2: a token id is outside \[0, vocab_size=1000\)"):
            build([19, 20, 20, 22, 0], toks)
        assert len(_split(build([21, 22, 22, 24, 0], toks)[0])) == 3  # unused: no error
    from components.pretraining_data import _records

    for cls, sep, mask in ((VOCAB, SEP, MASK), (CLS, -1, MASK), (CLS, SEP, VOCAB)):
        with pytest.raises(ValueError, match=r"must be in \[0, vocab_size=1000\)"):
            _records.build_records(tokens, np.array(good, np.int64), 0, 16, 5, 0.15, VOCAB,
                                   cls, sep, mask, None)


def test_portable_crc_table_equals_the_cpu_instruction():
    """The table code (used where the CPU has no SSE4.2) gives the same masked CRCs."""
    rng = np.random.default_rng(7)
    for size in (0, 1, 7, 8, 9, 63, 64, 65, 4097):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert records.masked_crc32c(data, portable=True) == records.masked_crc32c(data)
        assert records.masked_crc32c(data, portable=True) == _masked_crc(data)
