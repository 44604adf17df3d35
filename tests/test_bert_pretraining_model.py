"""Tests for components/bert/pretraining_model.py: outputs, features, mixed precision, tracing."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.bert.config import load_preset
from components.bert.pretraining_model import BertPretrainingModel, dummy_features, ensure_built, feature_specs

CONFIG = load_preset("bert_test")
B, S, P, H, V = 2, 16, 3, 32, 100


def _features():
    rng = np.random.default_rng(0)
    features = {key: tf.constant(value) for key, value in dummy_features(B, S, P).items()}
    features["input_ids"] = tf.constant(rng.integers(0, V, size=(B, S)).astype(np.int32))
    features["masked_lm_positions"] = tf.constant([[1, 2, 3], [4, 5, 0]], tf.int32)
    # Label keys of the original feature dict are ignored by the model.
    features["masked_lm_ids"] = tf.ones([B, P], tf.int32)
    features["masked_lm_weights"] = tf.ones([B, P], tf.float32)
    features["next_sentence_labels"] = tf.zeros([B, 1], tf.int32)
    return features


def test_output_shapes_and_dtypes():
    model = BertPretrainingModel(CONFIG)
    outputs = model(_features(), training=False)
    assert {key: tuple(value.shape) for key, value in outputs.items()} == {
        "sequence_output": (B, S, H), "pooled_output": (B, H),
        "masked_lm_log_probs": (B, P, V), "next_sentence_log_probs": (B, 2)}
    assert all(value.dtype == tf.float32 for value in outputs.values())
    assert model.masked_lm_head.output_weights is model.bert.embeddings.word_embeddings
    # The tied table is one variable, counted once.
    assert len(model.trainable_variables) == len({v.ref() for v in model.trainable_variables})


def test_missing_feature_is_a_clear_error():
    features = _features()
    del features["masked_lm_positions"]
    with pytest.raises(KeyError, match=r"missing \['masked_lm_positions'\]"):
        BertPretrainingModel(CONFIG)(features)


def test_int64_features_are_accepted():
    model = BertPretrainingModel(CONFIG)
    features = _features()
    as_int64 = {key: tf.cast(value, tf.int64) if value.dtype == tf.int32 else value
                for key, value in features.items()}
    np.testing.assert_array_equal(model(as_int64)["pooled_output"].numpy(),
                                  model(features)["pooled_output"].numpy())


def test_mixed_bfloat16_gives_float32_log_probs():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = BertPretrainingModel(CONFIG)
        outputs = model(_features(), training=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert outputs["sequence_output"].dtype == tf.bfloat16
    assert outputs["masked_lm_log_probs"].dtype == tf.float32
    assert outputs["next_sentence_log_probs"].dtype == tf.float32
    np.testing.assert_allclose(np.exp(outputs["masked_lm_log_probs"].numpy()).sum(-1), 1.0, rtol=1e-3)
    # Variables stay float32.
    assert model.bert.embeddings.word_embeddings.dtype == tf.float32
    assert model.masked_lm_head.output_bias.dtype == tf.float32


def test_traces_with_unknown_batch_and_sequence_sizes():
    model = BertPretrainingModel(CONFIG)
    ensure_built(model)
    serve = tf.function(lambda features: model(features, training=False), autograph=False)
    concrete = serve.get_concrete_function(feature_specs())
    assert concrete.structured_outputs["masked_lm_log_probs"].shape.as_list() == [None, None, V]
    features = {key: value for key, value in _features().items() if key in feature_specs()}
    for key, value in concrete(features).items():
        np.testing.assert_allclose(value.numpy(), model(features)[key].numpy(), rtol=1e-5, atol=1e-6)


def test_ensure_built_leaves_the_save_spec_open():
    model = BertPretrainingModel(CONFIG)
    ensure_built(model)
    assert model.built
    (spec,), _ = model.save_spec()
    assert spec["input_ids"].shape.as_list() == [None, None]


def test_keras_config_round_trip():
    model = BertPretrainingModel(CONFIG, use_one_hot_embeddings=True)
    clone = BertPretrainingModel.from_config(model.get_config())
    assert clone.config == CONFIG and clone.use_one_hot_embeddings
