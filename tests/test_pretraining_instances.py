"""Segment A/B construction, truncation and next-sentence labels (instances.py)."""
import random
import struct

import numpy as np
import tensorflow as tf

from components.pretraining_data import bucket, instances, records
from components.pretraining_data.options import PretrainingDataOptions


def _docs(num_docs, rng, sentences=(1, 12), tokens=(1, 40)):
    lengths, per_doc = [], []
    for _ in range(num_docs):
        n = rng.randint(*sentences)
        per_doc.append(n)
        lengths += [rng.randint(*tokens) for _ in range(n)]
    # Token value = its document, to trace where segments come from.
    doc_of_token = np.repeat(np.repeat(np.arange(num_docs), per_doc), lengths)
    return instances.pack_documents(doc_of_token + 10, np.array(lengths), np.array(per_doc))


def test_spans_fit_and_random_next_comes_from_another_document():
    docs = _docs(200, random.Random(1))
    spans = instances.create_instance_spans(docs, 64, 0.1, 2, random.Random(2))
    a0, a1, b0, b1, rnd = spans.T
    assert ((a1 - a0) >= 1).all() and ((b1 - b0) >= 1).all()
    assert ((a1 - a0) + (b1 - b0) <= 61).all()
    doc_a, doc_b = docs.tokens[a0], docs.tokens[b0]
    assert (doc_a[rnd == 0] == doc_b[rnd == 0]).all()      # actual next: same document
    assert (doc_a[rnd == 1] != doc_b[rnd == 1]).mean() > 0.99  # random next: another one
    # Actual next: B starts where A ended, before truncation from the front.
    assert (b0[rnd == 0] >= a1[rnd == 0]).all()
    # Multi-sentence chunks are 50/50; one-sentence chunks are always random.
    assert 0.45 < rnd.mean() < 0.75


def test_single_sentence_documents_get_random_next_and_short_sequences_appear():
    docs = _docs(50, random.Random(3), sentences=(1, 1), tokens=(5, 30))
    spans = instances.create_instance_spans(docs, 32, 1.0, 3, random.Random(4))
    assert len(spans) == 150 and (spans[:, 4] == 1).all()


def test_truncation_cuts_front_or_back_at_random():
    # Sentences far longer than the target: every chunk is one sentence, so A is
    # one sentence cut to fit; the original removes each token from the front or
    # the back with probability 1/2.
    docs = _docs(20, random.Random(5), sentences=(2, 2), tokens=(200, 300))
    spans = instances.create_instance_spans(docs, 16, 0.0, 20, random.Random(6))
    bounds = np.unique(np.concatenate([np.array(o) for o in docs.sentence_offsets]))
    s = np.searchsorted(bounds, spans[:, 0], side="right") - 1
    front = spans[:, 0] - bounds[s]
    back = bounds[s + 1] - spans[:, 1]
    assert (spans[:, 1] - spans[:, 0] <= 13).all()
    share = front / (front + back)
    assert abs(share.mean() - 0.5) < 0.02 and share.std() > 0.01


def test_assemble_layout():
    # [CLS] A [SEP] B [SEP] + 0 padding, as written by records.build_records; masking
    # changes the ids at masked_lm_positions, where masked_lm_ids holds the original.
    vocab = bucket.VocabInfo(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                             + [f"w{i}" for i in range(5, 200)])
    tokens = np.arange(100, 200, dtype=np.int32)
    spans = np.array([[0, 3, 10, 12, 0], [5, 6, 50, 55, 1]])
    options = PretrainingDataOptions(max_seq_length=12, max_predictions_per_seq=2,
                                     masked_lm_prob=0.15, do_whole_word_mask=False)
    blob, num_masked = records.build_records(tokens, spans, 0, vocab, options)
    expected_ids = [[2, 100, 101, 102, 3, 110, 111, 3, 0, 0, 0, 0],
                    [2, 105, 3, 150, 151, 152, 153, 154, 3, 0, 0, 0]]
    expected_seg = [[0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0],
                    [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0]]
    lengths = [8, 9]
    records_seen, offset = 0, 0
    for r in range(len(spans)):
        (size,) = struct.unpack_from("<Q", blob, offset)
        example = tf.train.Example.FromString(blob[offset + 12:offset + 12 + size])
        offset += 16 + size
        f = {k: list(v.float_list.value or v.int64_list.value)
             for k, v in example.features.feature.items()}
        weights = f["masked_lm_weights"]
        real = [(p, i) for p, i, w in zip(f["masked_lm_positions"], f["masked_lm_ids"], weights)
                if w > 0]
        masked = [p for p, _ in real]
        assert masked and len(masked) == sum(weights)
        for p, original in real:
            assert original == expected_ids[r][p] and expected_ids[r][p] not in (0, 2, 3)
        for p in range(12):
            if p not in masked:
                assert f["input_ids"][p] == expected_ids[r][p]
        assert f["segment_ids"] == expected_seg[r]
        assert f["input_mask"] == [1] * lengths[r] + [0] * (12 - lengths[r])
        assert f["next_sentence_labels"] == [spans[r, 4]]
        records_seen += 1
    assert records_seen == 2 and offset == len(blob)
    assert num_masked == 2  # min(2, max(1, round(8 or 9 * 0.15))) = 1 per instance


def test_pack_documents_drops_empty_sentences_and_documents():
    docs = instances.pack_documents(np.array([7, 8, 9]), np.array([0, 2, 0, 0, 1]),
                                    np.array([2, 2, 1]))
    assert docs.sentence_offsets == [[0, 2], [2, 3]]


def _original_instances(docs: instances.TokenizedDocuments, max_seq_length, short_seq_prob,
                        dupe_factor, rng):
    """google-research/bert's create_instances_from_document + truncate_seq_pair, verbatim
    but for token lists -> lengths; returns (len_a, len_b, is_random_next) per instance."""
    documents = [[o[k + 1] - o[k] for k in range(len(o) - 1)] for o in docs.sentence_offsets]
    out = []
    max_num_tokens = max_seq_length - 3
    for _ in range(dupe_factor):
        for document_index, document in enumerate(documents):
            target_seq_length = max_num_tokens
            if rng.random() < short_seq_prob:
                target_seq_length = rng.randint(2, max_num_tokens)
            current_chunk, current_length, i = [], 0, 0
            while i < len(document):
                current_chunk.append(document[i])
                current_length += document[i]
                if i == len(document) - 1 or current_length >= target_seq_length:
                    a_end = rng.randint(1, len(current_chunk) - 1) if len(current_chunk) >= 2 else 1
                    len_a = sum(current_chunk[:a_end])
                    if len(current_chunk) == 1 or rng.random() < 0.5:
                        is_random_next = True
                        for _ in range(10):
                            random_document_index = rng.randint(0, len(documents) - 1)
                            if random_document_index != document_index:
                                break
                        random_document = documents[random_document_index]
                        len_b = 0
                        for j in range(rng.randint(0, len(random_document) - 1),
                                       len(random_document)):
                            len_b += random_document[j]
                            if len_b >= target_seq_length - len_a:
                                break
                        i -= len(current_chunk) - a_end
                    else:
                        is_random_next = False
                        len_b = sum(current_chunk[a_end:])
                    while len_a + len_b > max_num_tokens:
                        rng.random()  # front or back: the lengths do not depend on it
                        if len_a > len_b:
                            len_a -= 1
                        else:
                            len_b -= 1
                    out.append((len_a, len_b, is_random_next))
                    current_chunk, current_length = [], 0
                i += 1
    return np.array(out, np.float64)


def test_same_distribution_as_the_original_algorithm():
    """Instances per document, segment lengths and the random-next rate match a verbatim
    Python port of the original on the same documents (different random streams)."""
    docs = _docs(400, random.Random(11), sentences=(1, 30), tokens=(1, 60))
    ours = instances.create_instance_spans(docs, 128, 0.1, 10, random.Random(12))
    ours = np.stack([ours[:, 1] - ours[:, 0], ours[:, 3] - ours[:, 2], ours[:, 4]], 1)
    theirs = _original_instances(docs, 128, 0.1, 10, random.Random(13))
    assert abs(len(ours) / len(theirs) - 1) < 0.02, (len(ours), len(theirs))
    for column in range(3):
        assert abs(ours[:, column].mean() / theirs[:, column].mean() - 1) < 0.03, column
    assert (ours[:, 0] + ours[:, 1] <= 125).all() and (ours[:, :2] >= 1).all()
