"""Tests for components/bert/losses.py: the original losses against numpy, weighting, accuracies."""
import numpy as np
import pytest
import tensorflow as tf

from components.bert import losses

B, P, V = 3, 4, 10


def _log_softmax(logits):
    logits = logits - logits.max(-1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def _mlm_case(seed=0):
    rng = np.random.default_rng(seed)
    log_probs = _log_softmax(rng.normal(size=(B, P, V))).astype(np.float32)
    labels = rng.integers(0, V, size=(B, P)).astype(np.int32)
    weights = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], np.float32)
    return log_probs, labels, weights


def test_masked_lm_loss_equals_numpy():
    log_probs, labels, weights = _mlm_case()
    picked = np.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
    expected = np.sum(-weights * picked) / (np.sum(weights) + 1e-5)
    loss = losses.masked_lm_loss(log_probs, labels, weights)
    assert loss.dtype == tf.float32 and loss.shape == ()
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)


def test_weight_zero_predictions_contribute_nothing():
    log_probs, labels, weights = _mlm_case()
    loss = losses.masked_lm_loss(log_probs, labels, weights).numpy()
    padded = weights == 0
    other_labels = labels.copy()
    other_labels[padded] = (labels[padded] + 3) % V
    other_log_probs = log_probs.copy()
    other_log_probs[padded] = _log_softmax(np.random.default_rng(5).normal(size=(padded.sum(), V)))
    assert losses.masked_lm_loss(other_log_probs, other_labels, weights).numpy() == loss
    # Whereas changing a real prediction's label does change it.
    other_labels[0, 0] = (labels[0, 0] + 1) % V
    assert losses.masked_lm_loss(log_probs, other_labels, weights).numpy() != loss


def test_all_padding_gives_zero_not_nan():
    log_probs, labels, _ = _mlm_case()
    assert losses.masked_lm_loss(log_probs, labels, np.zeros([B, P], np.float32)).numpy() == 0.0


def test_next_sentence_loss_equals_numpy_for_both_label_shapes():
    log_probs = _log_softmax(np.random.default_rng(1).normal(size=(B, 2))).astype(np.float32)
    labels = np.array([0, 1, 1], np.int32)
    expected = -np.mean(log_probs[np.arange(B), labels])
    np.testing.assert_allclose(losses.next_sentence_loss(log_probs, labels).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(losses.next_sentence_loss(log_probs, labels[:, None]).numpy(), expected, rtol=1e-6)


def test_pretraining_loss_is_the_sum():
    log_probs, labels, weights = _mlm_case()
    nsp_log_probs = _log_softmax(np.random.default_rng(2).normal(size=(B, 2))).astype(np.float32)
    outputs = {"masked_lm_log_probs": log_probs, "next_sentence_log_probs": nsp_log_probs}
    features = {"masked_lm_ids": labels, "masked_lm_weights": weights,
                "next_sentence_labels": np.array([[0], [1], [0]], np.int32)}
    result = losses.pretraining_loss(outputs, features)
    assert set(result) == {"total_loss", "masked_lm_loss", "next_sentence_loss"}
    np.testing.assert_allclose(result["total_loss"].numpy(),
                               result["masked_lm_loss"].numpy() + result["next_sentence_loss"].numpy())
    np.testing.assert_allclose(result["masked_lm_loss"].numpy(),
                               losses.masked_lm_loss(log_probs, labels, weights).numpy())


def test_bfloat16_log_probs_give_float32_losses():
    log_probs, labels, weights = _mlm_case()
    loss = losses.masked_lm_loss(tf.cast(log_probs, tf.bfloat16), labels, weights)
    assert loss.dtype == tf.float32


def test_masked_lm_accuracy_is_weighted():
    log_probs, labels, weights = _mlm_case()
    predictions = log_probs.argmax(-1)
    labels = predictions.copy().astype(np.int32)
    labels[0, 0] = (labels[0, 0] + 1) % V  # one real prediction wrong (weight 1)
    labels[0, 3] = (labels[0, 3] + 1) % V  # one padding prediction wrong (weight 0): ignored
    accuracy = losses.masked_lm_accuracy(log_probs, labels, weights).numpy()
    np.testing.assert_allclose(accuracy, (weights.sum() - 1) / weights.sum(), rtol=1e-6)
    assert losses.masked_lm_accuracy(log_probs, labels, np.zeros_like(weights)).numpy() == 0.0


def test_next_sentence_accuracy():
    log_probs = np.log(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32))
    assert losses.next_sentence_accuracy(log_probs, np.array([[0], [1], [1]])).numpy() == pytest.approx(2 / 3)
