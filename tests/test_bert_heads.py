"""Tests for components/bert/heads.py: shapes, gathering, weight tying, log-probs."""
import numpy as np
import tensorflow as tf

from components.bert.config import load_preset
from components.bert.embeddings import BertEmbeddings
from components.bert.heads import MaskedLMHead, NextSentenceHead, gather_indexes

CONFIG = load_preset("bert_test")
B, S, P, H, V = 2, 16, 3, 32, 100


def _built_head():
    embeddings = BertEmbeddings(CONFIG)
    embeddings(np.zeros([1, 2], np.int32), np.zeros([1, 2], np.int32))
    return embeddings, MaskedLMHead(CONFIG, embeddings)


def test_gather_indexes_picks_positions_per_example():
    sequence = tf.reshape(tf.range(B * S * 2, dtype=tf.float32), [B, S, 2])
    positions = np.array([[0, 5, 15], [1, 1, 2]], np.int32)
    gathered = gather_indexes(sequence, positions).numpy()
    assert gathered.shape == (B, P, 2)
    np.testing.assert_array_equal(gathered, sequence.numpy()[np.arange(B)[:, None], positions])


def test_masked_lm_head_shapes_and_normalised_log_probs():
    _, head = _built_head()
    log_probs = head(tf.random.normal([B, S, H]), np.zeros([B, P], np.int32))
    assert log_probs.shape == (B, P, V) and log_probs.dtype == tf.float32
    np.testing.assert_allclose(np.exp(log_probs.numpy()).sum(-1), 1.0, rtol=1e-5)
    assert head.output_bias.shape == (V,)


def test_masked_lm_output_weights_are_the_word_embedding_table():
    embeddings, head = _built_head()
    head(tf.random.normal([B, S, H]), np.zeros([B, P], np.int32))
    assert head.output_weights is embeddings.word_embeddings
    # Changing the table changes the head's logits: it is used, not copied.
    sequence, positions = tf.random.normal([B, S, H]), np.ones([B, P], np.int32)
    before = head(sequence, positions).numpy()
    embeddings.word_embeddings.assign(embeddings.word_embeddings * 3.0)
    assert not np.allclose(head(sequence, positions).numpy(), before)


def test_masked_lm_head_only_depends_on_masked_positions():
    _, head = _built_head()
    sequence = tf.random.normal([B, S, H]).numpy()
    positions = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
    before = head(sequence, positions).numpy()
    sequence[:, 10:] = 7.0  # positions never asked for
    np.testing.assert_array_equal(head(sequence, positions).numpy(), before)


def test_masked_lm_head_equals_numpy():
    embeddings, head = _built_head()
    sequence = tf.random.normal([B, S, H]).numpy()
    positions = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
    head(sequence, positions)
    head.output_bias.assign(np.linspace(-1, 1, V).astype(np.float32))
    x = sequence[np.arange(B)[:, None], positions] @ head.transform_dense.kernel.numpy()
    x = x + head.transform_dense.bias.numpy()
    x = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
    logits = x @ embeddings.word_embeddings.numpy().T + head.output_bias.numpy()
    expected = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(head(sequence, positions).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_next_sentence_head():
    head = NextSentenceHead(CONFIG)
    pooled = tf.random.normal([B, H])
    log_probs = head(pooled)
    assert log_probs.shape == (B, 2) and log_probs.dtype == tf.float32
    assert head.output_weights.shape == (2, H) and head.output_bias.shape == (2,)
    logits = pooled.numpy() @ head.output_weights.numpy().T + head.output_bias.numpy()
    expected = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(log_probs.numpy(), expected, rtol=1e-5, atol=1e-6)
