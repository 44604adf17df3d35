"""The numpy Example encoder gives the bytes of deterministic proto serialisation."""
import numpy as np
import tensorflow as tf

from components.pretraining_data import example_encoder, schema


def _example(i, ids, mask, seg, pos, mlm, w, nsl):
    f = lambda v: tf.train.Feature(int64_list=tf.train.Int64List(value=v))  # noqa: E731
    return tf.train.Example(features=tf.train.Features(feature={
        "input_ids": f(ids[i]), "input_mask": f(mask[i]), "segment_ids": f(seg[i]),
        "masked_lm_positions": f(pos[i]), "masked_lm_ids": f(mlm[i]),
        "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(value=w[i])),
        "next_sentence_labels": f([nsl[i]])}))


def test_bytes_equal_deterministic_serialisation_and_parse_with_feature_spec():
    rng = np.random.default_rng(0)
    n, seq, pred = 7, 16, 5
    # Ids across every varint width that matters (1-3 bytes, and > 2**21).
    ids = rng.integers(0, 3_000_000, (n, seq))
    ids[0] = rng.integers(0, 100, seq)
    mask = (rng.random((n, seq)) < 0.8).astype(np.int64)
    seg = (rng.random((n, seq)) < 0.5).astype(np.int64)
    pos = rng.integers(0, 300, (n, pred))
    mlm = rng.integers(0, 40000, (n, pred))
    w = rng.random((n, pred)).astype(np.float32)
    nsl = rng.integers(0, 2, n)
    blob, offsets = example_encoder.encode_examples(ids, mask, seg, pos, mlm, w, nsl)
    assert len(offsets) == n + 1 and offsets[-1] == len(blob)
    spec = schema.feature_spec(seq, pred)
    for i in range(n):
        record = blob[offsets[i]:offsets[i + 1]]
        assert record == _example(i, ids, mask, seg, pos, mlm, w, nsl).SerializeToString(
            deterministic=True)
        parsed = tf.io.parse_single_example(record, spec)
        np.testing.assert_array_equal(parsed["input_ids"].numpy(), ids[i])
        np.testing.assert_array_equal(parsed["masked_lm_weights"].numpy(), w[i])
        assert parsed["next_sentence_labels"].numpy().tolist() == [nsl[i]]


def test_feature_spec_shapes_and_dtypes():
    spec = schema.feature_spec(128, 20)
    assert tuple(spec) == schema.FEATURE_NAMES
    assert spec["input_ids"].shape == [128] and spec["input_ids"].dtype == tf.int64
    assert spec["masked_lm_positions"].shape == [20]
    assert spec["masked_lm_weights"].dtype == tf.float32
    assert spec["next_sentence_labels"].shape == [1]


def test_varint_width_boundaries_and_mixed_lengths():
    # Every varint width edge of the table path (< 2**21) and beyond it, in rows
    # whose packed lengths need 1- and 2-byte length prefixes.
    edges = [0, 1, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**28, 2**31 + 5]
    n, seq, pred = 6, 40, 3
    ids = np.zeros((n, seq), np.int64)
    ids[1, :len(edges)] = edges
    ids[2] = 2**21 - 1
    ids[3, :8] = edges[:8]
    ids[4] = 127
    ids[5] = 16384
    mask = (ids > 0).astype(np.int64)
    seg = np.zeros((n, seq), np.int64)
    pos = np.array([[0, 1, 2], [127, 128, 39], [5, 0, 0], [1, 1, 1], [0, 0, 0], [300, 2, 1]])
    mlm = np.array([[16383, 16384, 0], [2**21 - 1, 1, 2], [0, 0, 0], [5, 6, 7], [1, 1, 1],
                    [2**21, 3, 4]])
    w = np.ones((n, pred), np.float32)
    nsl = np.array([0, 1, 0, 1, 1, 0])
    blob, offsets = example_encoder.encode_examples(ids, mask, seg, pos, mlm, w, nsl)
    for i in range(n):
        assert blob[offsets[i]:offsets[i + 1]] == _example(
            i, ids, mask, seg, pos, mlm, w, nsl).SerializeToString(deterministic=True)
