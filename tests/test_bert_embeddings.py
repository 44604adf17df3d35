"""Tests for components/bert/embeddings.py: shapes and the maths against numpy."""
import numpy as np
import pytest
import tensorflow as tf

from components.bert.config import load_preset
from components.bert.embeddings import BertEmbeddings

CONFIG = load_preset("bert_test")  # vocab 100, H 32, max positions 128, type vocab 2
B, S = 2, 16


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, CONFIG.vocab_size, size=(B, S)).astype(np.int32)
    types = rng.integers(0, CONFIG.type_vocab_size, size=(B, S)).astype(np.int32)
    return ids, types


def _layer_norm(x, gamma, beta, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def test_shapes_and_variables():
    layer = BertEmbeddings(CONFIG)
    ids, types = _inputs()
    assert layer(ids, types).shape == (B, S, CONFIG.hidden_size)
    assert layer.word_embedding_table.shape == (CONFIG.vocab_size, CONFIG.hidden_size)
    assert layer.token_type_embeddings.shape == (CONFIG.type_vocab_size, CONFIG.hidden_size)
    assert layer.position_embeddings.shape == (CONFIG.max_position_embeddings, CONFIG.hidden_size)
    assert layer.word_embedding_table is layer.word_embeddings


def test_sum_then_layer_norm_equals_numpy():
    layer = BertEmbeddings(CONFIG)
    ids, types = _inputs()
    layer(ids, types)
    rng = np.random.default_rng(1)
    gamma = rng.normal(1.0, 0.1, CONFIG.hidden_size).astype(np.float32)
    beta = rng.normal(0.0, 0.1, CONFIG.hidden_size).astype(np.float32)
    layer.layer_norm.gamma.assign(gamma)
    layer.layer_norm.beta.assign(beta)
    words = layer.word_embeddings.numpy()
    type_table = layer.token_type_embeddings.numpy()
    positions = layer.position_embeddings.numpy()

    expected = _layer_norm(words[ids] + type_table[types] + positions[:S][None], gamma, beta)
    np.testing.assert_allclose(layer(ids, types, training=False).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_one_hot_word_embeddings_equal_gather():
    gather = BertEmbeddings(CONFIG)
    one_hot = BertEmbeddings(CONFIG, use_one_hot_embeddings=True)
    ids, types = _inputs(2)
    gather(ids, types)
    one_hot(ids, types)
    one_hot.set_weights(gather.get_weights())
    np.testing.assert_allclose(one_hot(ids, types).numpy(), gather(ids, types).numpy(), rtol=1e-5, atol=1e-6)


def test_dropout_only_in_training():
    layer = BertEmbeddings(CONFIG)
    ids, types = _inputs()
    np.testing.assert_array_equal(layer(ids, types, training=False).numpy(), layer(ids, types).numpy())
    assert not np.allclose(layer(ids, types, training=True).numpy(), layer(ids, types).numpy())


def test_sequence_longer_than_max_positions_is_a_clear_error():
    layer = BertEmbeddings(CONFIG)
    too_long = np.zeros([1, CONFIG.max_position_embeddings + 1], np.int32)
    with pytest.raises(ValueError, match=r"Sequence length 129 is longer than max_position_embeddings \(128\)"):
        layer(too_long, too_long)


def test_dynamic_sequence_length_is_checked_at_run_time():
    layer = BertEmbeddings(CONFIG)
    spec = tf.TensorSpec([None, None], tf.int32)
    run = tf.function(lambda ids, types: layer(ids, types), input_signature=[spec, spec], autograph=False)
    assert run(np.zeros([1, 8], np.int32), np.zeros([1, 8], np.int32)).shape == (1, 8, CONFIG.hidden_size)
    too_long = np.zeros([1, CONFIG.max_position_embeddings + 1], np.int32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="longer than max_position_embeddings"):
        run(too_long, too_long)


def test_rank_is_checked():
    layer = BertEmbeddings(CONFIG)
    with pytest.raises(ValueError, match="input_ids must have rank 2"):
        layer(np.zeros([S], np.int32), np.zeros([S], np.int32))
