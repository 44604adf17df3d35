"""The pretraining losses of run_pretraining.py, and per-batch accuracies.

All results are float32 scalars whatever the model's compute dtype. The losses are
per-batch (per-replica under a distribution strategy), exactly as the original computes
them on each TPU core; averaging across replicas is the training loop's job.
"""
from __future__ import annotations

from typing import Dict, Mapping

import tensorflow as tf

from components.bert.modeling_utils import get_shape_list

# The original adds 1e-5 to the weight sum so an all-padding batch gives loss 0, not NaN.
_WEIGHT_EPSILON = 1e-5


def _flat_labels(labels: tf.Tensor, name: str) -> tf.Tensor:
    return tf.reshape(tf.cast(labels, tf.int32), [-1], name=name)


def masked_lm_loss(log_probs: tf.Tensor, label_ids: tf.Tensor, label_weights: tf.Tensor) -> tf.Tensor:
    """Weighted mean negative log-likelihood of the masked tokens (get_masked_lm_output's loss).

    loss = sum(-w * log_probs[label]) / (sum(w) + 1e-5). Padding predictions carry
    weight 0 and contribute nothing (as long as their log-probs are finite).

    Args:
      log_probs: float [B, P, V] log-probabilities.
      label_ids: int [B, P] original token ids at the masked positions.
      label_weights: float [B, P], 1.0 for real predictions and 0.0 for padding.
    Returns:
      float32 scalar.
    """
    _, _, vocab_size = get_shape_list(log_probs, expected_rank=3, name="masked_lm_log_probs")
    log_probs = tf.reshape(tf.cast(log_probs, tf.float32), [-1, vocab_size])
    label_ids = _flat_labels(label_ids, "masked_lm_ids")
    label_weights = tf.reshape(tf.cast(label_weights, tf.float32), [-1])
    # One-hot product as the original (an out-of-range id contributes 0 instead of failing).
    one_hot = tf.one_hot(label_ids, depth=vocab_size, dtype=tf.float32)
    per_example_loss = -tf.reduce_sum(log_probs * one_hot, axis=-1)
    numerator = tf.reduce_sum(label_weights * per_example_loss)
    denominator = tf.reduce_sum(label_weights) + _WEIGHT_EPSILON
    return numerator / denominator


def next_sentence_loss(log_probs: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Mean negative log-likelihood of the next sentence labels (get_next_sentence_output's loss).

    Args:
      log_probs: float [B, 2] log-probabilities (class 0 = IsNext, 1 = random sentence).
      labels: int [B] or [B, 1].
    Returns:
      float32 scalar.
    """
    get_shape_list(log_probs, expected_rank=2, name="next_sentence_log_probs")
    labels = _flat_labels(labels, "next_sentence_labels")
    one_hot = tf.one_hot(labels, depth=2, dtype=tf.float32)
    per_example_loss = -tf.reduce_sum(tf.cast(log_probs, tf.float32) * one_hot, axis=-1)
    return tf.reduce_mean(per_example_loss)


def pretraining_loss(outputs: Mapping[str, tf.Tensor], features: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """The original total loss: masked LM loss + next sentence loss.

    Args:
      outputs: BertPretrainingModel outputs (masked_lm_log_probs, next_sentence_log_probs).
      features: the feature dict with masked_lm_ids [B, P], masked_lm_weights [B, P]
        and next_sentence_labels [B] or [B, 1].
    Returns:
      dict of float32 scalars: total_loss, masked_lm_loss, next_sentence_loss.
    """
    mlm = masked_lm_loss(outputs["masked_lm_log_probs"], features["masked_lm_ids"],
                         features["masked_lm_weights"])
    nsp = next_sentence_loss(outputs["next_sentence_log_probs"], features["next_sentence_labels"])
    return {"total_loss": mlm + nsp, "masked_lm_loss": mlm, "next_sentence_loss": nsp}


def masked_lm_accuracy(log_probs: tf.Tensor, label_ids: tf.Tensor, label_weights: tf.Tensor) -> tf.Tensor:
    """Fraction of real (weight > 0) masked tokens whose argmax is the label, weighted by weight.

    Args: as masked_lm_loss. Returns a float32 scalar (0 if all weights are 0).
    """
    predictions = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
    correct = tf.cast(tf.equal(predictions, tf.cast(label_ids, tf.int32)), tf.float32)
    weights = tf.cast(label_weights, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(correct * weights), tf.reduce_sum(weights))


def next_sentence_accuracy(log_probs: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Fraction of examples whose argmax is the next sentence label. Returns a float32 scalar."""
    predictions = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
    labels = _flat_labels(labels, "next_sentence_labels")
    return tf.reduce_mean(tf.cast(tf.equal(predictions, labels), tf.float32))
