"""Tests for components/bert/encoder.py: shapes, the attention mask, GELU, post-LN layers."""
import math

import numpy as np
import tensorflow as tf

from components.bert.config import load_preset
from components.bert.encoder import AttentionLayer, BertModel, TransformerLayer, attention_mask_bias
from components.bert.modeling_utils import gelu

CONFIG = load_preset("bert_test")  # L2 / H32 / A4 / I64
B, S, H = 2, 16, 32


def _batch(seed=0, pad_from=12):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, CONFIG.vocab_size, size=(B, S)).astype(np.int32)
    mask = np.ones((B, S), np.int32)
    mask[:, pad_from:] = 0
    ids[mask == 0] = 0
    segments = np.zeros((B, S), np.int32)
    segments[:, S // 2:] = 1
    return ids, mask, segments


def test_bert_model_output_shapes():
    model = BertModel(CONFIG)
    sequence_output, pooled_output = model(*_batch())
    assert sequence_output.shape == (B, S, H) and sequence_output.dtype == tf.float32
    assert pooled_output.shape == (B, H)
    assert len(model.encoder_layers) == 2


def test_layer_output_shapes():
    hidden = tf.random.normal([B, S, H])
    bias = attention_mask_bias(np.ones([B, S], np.int32))
    assert AttentionLayer(CONFIG)(hidden, bias).shape == (B, S, H)
    assert TransformerLayer(CONFIG, name="layer_0")(hidden, bias).shape == (B, S, H)


def test_attention_mask_bias_values():
    bias = attention_mask_bias(np.array([[1, 1, 0], [1, 0, 0]], np.int32)).numpy()
    assert bias.shape == (2, 1, 1, 3) and bias.dtype == np.float32
    np.testing.assert_array_equal(bias[:, 0, 0, :], [[0, 0, -10000], [0, -10000, -10000]])


def test_padded_tokens_do_not_change_real_outputs():
    model = BertModel(CONFIG)
    ids, mask, segments = _batch(pad_from=12)
    sequence_output, pooled_output = model(ids, mask, segments)
    changed = ids.copy()
    changed[:, 12:] = np.arange(4) + 50  # different tokens at padded positions only
    changed_sequence, changed_pooled = model(changed, mask, segments)
    np.testing.assert_allclose(changed_sequence.numpy()[:, :12], sequence_output.numpy()[:, :12], atol=1e-6)
    np.testing.assert_allclose(changed_pooled.numpy(), pooled_output.numpy(), atol=1e-6)
    # The padded positions' own outputs do change, so the check above is not vacuous.
    assert not np.allclose(changed_sequence.numpy()[:, 12:], sequence_output.numpy()[:, 12:])


def test_default_mask_and_segments():
    model = BertModel(CONFIG)
    ids = _batch()[0]
    defaults = model(ids)[0].numpy()
    explicit = model(ids, np.ones_like(ids), np.zeros_like(ids))[0].numpy()
    np.testing.assert_array_equal(defaults, explicit)


def test_gelu_is_the_tanh_approximation():
    x = np.linspace(-5, 5, 41)
    expected = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(gelu(tf.constant(x, tf.float32)).numpy(), expected, rtol=1e-5, atol=1e-6)
    # Not the exact erf GELU (which differs by up to ~5e-4 here).
    exact = tf.nn.gelu(tf.constant(x, tf.float32), approximate=False).numpy()
    assert np.abs(exact - expected).max() > 1e-4


def test_layer_norms_are_post_ln_with_epsilon_1e12():
    layer = TransformerLayer(CONFIG, name="layer_0")
    out = layer(tf.random.normal([B, S, H]), attention_mask_bias(np.ones([B, S], np.int32)))
    # Post-LN: the layer's output is the output of a LayerNorm with gamma 1, beta 0.
    np.testing.assert_allclose(out.numpy().mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.numpy().std(-1), 1.0, atol=1e-3)
    for norm in (layer.output_layer_norm, layer.attention.output_layer_norm):
        assert norm.epsilon == 1e-12 and norm.name == "LayerNorm"


def test_initialisers_are_independent_truncated_normals():
    model = BertModel(CONFIG)
    model(*_batch())
    attention = model.encoder_layers[0].attention
    query, key = attention.query.kernel.numpy(), attention.key.kernel.numpy()
    assert not np.allclose(query, key)  # one initializer per variable: q and k differ
    assert np.abs(query).max() <= 2 * CONFIG.initializer_range
    assert 0.5 * CONFIG.initializer_range < query.std() < CONFIG.initializer_range
    np.testing.assert_array_equal(attention.query.bias.numpy(), 0.0)
