"""Tests for components/bert/tf1_checkpoint.py, against checkpoints written with the original names.

`_original_weights` lists the variables of google-research/bert's pretraining graph by hand
(names and shapes as modeling.py / run_pretraining.py create them), independent of the
mapping code, and `_numpy_bert` is the original forward pass in numpy: loading such a
checkpoint must put every array where the original would use it.
"""
import numpy as np
import pytest
import tensorflow as tf

from components.bert.config import load_preset
from components.bert.pretraining_model import BertPretrainingModel
from components.bert.tf1_checkpoint import (is_tf1_checkpoint, load_tf1_checkpoint, save_tf1_checkpoint,
                                            tf1_variable_map)

CONFIG = load_preset("bert_test")  # V100 / H32 / L2 / A4 / I64 / 128 positions / 2 types
V, H, I, L = CONFIG.vocab_size, CONFIG.hidden_size, CONFIG.intermediate_size, CONFIG.num_hidden_layers


def _original_weights(seed=0):
    shapes = {
        "bert/embeddings/word_embeddings": [V, H],
        "bert/embeddings/token_type_embeddings": [CONFIG.type_vocab_size, H],
        "bert/embeddings/position_embeddings": [CONFIG.max_position_embeddings, H],
        "bert/embeddings/LayerNorm/gamma": [H], "bert/embeddings/LayerNorm/beta": [H],
        "bert/pooler/dense/kernel": [H, H], "bert/pooler/dense/bias": [H],
        "cls/predictions/transform/dense/kernel": [H, H], "cls/predictions/transform/dense/bias": [H],
        "cls/predictions/transform/LayerNorm/gamma": [H], "cls/predictions/transform/LayerNorm/beta": [H],
        "cls/predictions/output_bias": [V],
        "cls/seq_relationship/output_weights": [2, H], "cls/seq_relationship/output_bias": [2],
    }
    for i in range(L):
        p = f"bert/encoder/layer_{i}/"
        for name in ("attention/self/query", "attention/self/key", "attention/self/value",
                     "attention/output/dense"):
            shapes[p + name + "/kernel"], shapes[p + name + "/bias"] = [H, H], [H]
        shapes[p + "intermediate/dense/kernel"], shapes[p + "intermediate/dense/bias"] = [H, I], [I]
        shapes[p + "output/dense/kernel"], shapes[p + "output/dense/bias"] = [I, H], [H]
        for name in ("attention/output/LayerNorm", "output/LayerNorm"):
            shapes[p + name + "/gamma"], shapes[p + name + "/beta"] = [H], [H]
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in shapes.items():
        center = 1.0 if name.endswith("gamma") else 0.0
        weights[name] = rng.normal(center, 0.1 if center else 0.05, size=shape).astype(np.float32)
    return weights


def _write(prefix, arrays):
    """Writes a checkpoint with exactly these names, as TF1's Saver would (no mapping code)."""
    names = sorted(arrays)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(arrays[name]) for name in names])
    return prefix


def _features(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, V, size=(2, 16)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 11:] = 0
    segments = np.zeros_like(ids)
    segments[:, 8:] = 1
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments,
            "masked_lm_positions": np.array([[1, 4, 9], [2, 3, 0]], np.int32)}


def _numpy_bert(w, f):
    """google-research/bert's modeling.py + run_pretraining.py heads, in float64 numpy."""
    def gelu(x):
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    def ln(x, prefix):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * w[prefix + "/gamma"] + w[prefix + "/beta"]

    def dense(x, prefix):
        return x @ w[prefix + "/kernel"] + w[prefix + "/bias"]

    def log_softmax(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    ids, mask, types = f["input_ids"], f["input_mask"], f["segment_ids"]
    B, S = ids.shape
    heads, d = CONFIG.num_attention_heads, H // CONFIG.num_attention_heads
    x = (w["bert/embeddings/word_embeddings"][ids] + w["bert/embeddings/token_type_embeddings"][types]
         + w["bert/embeddings/position_embeddings"][:S])
    x = ln(x, "bert/embeddings/LayerNorm")
    adder = (1.0 - mask[:, None, None, :]) * -10000.0
    for i in range(L):
        p = f"bert/encoder/layer_{i}/"
        split = lambda t: t.reshape(B, S, heads, d).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = (split(dense(x, p + "attention/self/" + n)) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + adder
        probs = np.exp(log_softmax(scores))
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(B, S, H)
        attention = ln(dense(context, p + "attention/output/dense") + x, p + "attention/output/LayerNorm")
        inner = gelu(dense(attention, p + "intermediate/dense"))
        x = ln(dense(inner, p + "output/dense") + attention, p + "output/LayerNorm")
    pooled = np.tanh(dense(x[:, 0], "bert/pooler/dense"))
    picked = x[np.arange(B)[:, None], f["masked_lm_positions"]]
    t = ln(gelu(dense(picked, "cls/predictions/transform/dense")), "cls/predictions/transform/LayerNorm")
    mlm = log_softmax(t @ w["bert/embeddings/word_embeddings"].T + w["cls/predictions/output_bias"])
    nsp = log_softmax(pooled @ w["cls/seq_relationship/output_weights"].T + w["cls/seq_relationship/output_bias"])
    return {"sequence_output": x, "pooled_output": pooled, "masked_lm_log_probs": mlm, "next_sentence_log_probs": nsp}


def test_variable_map_covers_every_variable_once_with_original_shapes():
    model = BertPretrainingModel(CONFIG)
    names = tf1_variable_map(model)
    expected = _original_weights()
    assert sorted(names) == sorted(expected)
    assert {v.ref() for v in names.values()} == {v.ref() for v in model.trainable_variables}
    for name, variable in names.items():
        assert variable.shape.as_list() == list(expected[name].shape), name


def test_loading_an_original_checkpoint_matches_the_original_forward_pass(tmp_path):
    weights = _original_weights()
    # An original training checkpoint also holds Adam slots and the step: skipped.
    extras = {"global_step": np.array(1000, np.int64),
              "bert/pooler/dense/kernel/adam_m": np.zeros([H, H], np.float32),
              "bert/pooler/dense/kernel/adam_v": np.zeros([H, H], np.float32)}
    prefix = _write(str(tmp_path / "bert_model.ckpt"), {**weights, **extras})
    model = BertPretrainingModel(CONFIG)
    loaded = load_tf1_checkpoint(model, prefix)
    assert sorted(loaded) == sorted(weights)

    np.testing.assert_array_equal(model.bert.encoder_layers[1].attention.query.kernel.numpy(),
                                  weights["bert/encoder/layer_1/attention/self/query/kernel"])
    np.testing.assert_array_equal(model.next_sentence_head.output_weights.numpy(),
                                  weights["cls/seq_relationship/output_weights"])
    np.testing.assert_array_equal(model.bert.encoder_layers[0].output_dense.kernel.numpy(),
                                  weights["bert/encoder/layer_0/output/dense/kernel"])

    features = _features()
    outputs = model(features, training=False)
    expected = _numpy_bert({k: v.astype(np.float64) for k, v in weights.items()}, features)
    for key, want in expected.items():
        np.testing.assert_allclose(outputs[key].numpy(), want, rtol=1e-4, atol=2e-5, err_msg=key)


def test_save_then_load_round_trip_gives_identical_outputs(tmp_path):
    source = BertPretrainingModel(CONFIG)
    prefix = save_tf1_checkpoint(source, str(tmp_path / "out" / "bert_model.ckpt"))
    assert is_tf1_checkpoint(prefix)
    reader = tf.train.load_checkpoint(prefix)
    assert sorted(reader.get_variable_to_shape_map()) == sorted(_original_weights())

    target = BertPretrainingModel(CONFIG)
    load_tf1_checkpoint(target, prefix)
    features = _features(1)
    for key, value in source(features).items():
        np.testing.assert_array_equal(target(features)[key].numpy(), value.numpy(), err_msg=key)


def test_missing_variable_is_a_clear_error(tmp_path):
    weights = _original_weights()
    del weights["bert/encoder/layer_1/attention/self/key/bias"]
    prefix = _write(str(tmp_path / "ckpt"), weights)
    with pytest.raises(ValueError, match=r"lacks 1 variable.*bert/encoder/layer_1/attention/self/key/bias"):
        load_tf1_checkpoint(BertPretrainingModel(CONFIG), prefix)


def test_wrong_shape_is_a_clear_error(tmp_path):
    weights = _original_weights()
    weights["bert/embeddings/word_embeddings"] = np.zeros([V + 1, H], np.float32)
    prefix = _write(str(tmp_path / "ckpt"), weights)
    with pytest.raises(ValueError, match=r"bert/embeddings/word_embeddings has shape \[101, 32\] but the "
                                         r"model expects \[100, 32\]"):
        load_tf1_checkpoint(BertPretrainingModel(CONFIG), prefix)


def test_unused_weights_are_an_error_unless_allowed(tmp_path):
    weights = _original_weights()
    weights["bert/encoder/layer_2/output/dense/bias"] = np.zeros([H], np.float32)  # a deeper model's
    prefix = _write(str(tmp_path / "ckpt"), weights)
    with pytest.raises(ValueError, match=r"no place\s+for: bert/encoder/layer_2/output/dense/bias"):
        load_tf1_checkpoint(BertPretrainingModel(CONFIG), prefix)
    assert len(load_tf1_checkpoint(BertPretrainingModel(CONFIG), prefix, allow_unused=True)) == len(weights) - 1


def test_is_tf1_checkpoint(tmp_path):
    assert not is_tf1_checkpoint(str(tmp_path / "nothing"))
    tf2 = tf.train.Checkpoint(model=tf.Module()).save(str(tmp_path / "tf2" / "ckpt"))
    assert not is_tf1_checkpoint(tf2)
    assert is_tf1_checkpoint(_write(str(tmp_path / "tf1"), _original_weights()))
