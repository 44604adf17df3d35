"""The pretraining loss, split across replicas so that the sum over replicas is exact.

run_pretraining.py's loss on one device is
    masked_lm_loss = sum(w * nll_mlm) / (sum(w) + 1e-5)      over the batch's predictions
    next_sentence_loss = mean(nll_nsp)                        over the batch's examples
Under a strategy each replica sees a slice of the global batch and gradients are summed
across replicas. Normalising each replica's sums by the GLOBAL weight sum and the GLOBAL
batch size makes the summed gradient equal to the single-device gradient on the whole
batch, which a per-replica mean would not (a mean of ratios is not the ratio of sums).
"""
from __future__ import annotations

import tensorflow as tf

from components.trainer.input_pipeline import EXAMPLE_WEIGHT
from components.trainer.packing import NEXT_SENTENCE_WEIGHTS


def per_prediction_nll(log_probs: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """-log p(label): log_probs float32 [B, P, V] or [B, V]; ids int32 [B, P] or [B] -> float32 like ids."""
    ids = tf.cast(ids, tf.int32)
    return -tf.gather(tf.cast(log_probs, tf.float32), ids, batch_dims=len(ids.shape))


def replica_loss_terms(outputs: dict, features: dict) -> dict:
    """Per-replica sums the losses and metrics are made of (all float32 scalars).

    Args:
      outputs: the model's dict, with masked_lm_log_probs [b, P, V] and next_sentence_log_probs [b, 2].
      features: the batch, with masked_lm_ids [b, P] int32, masked_lm_weights [b, P] float32,
        next_sentence_labels [b, 1] int32, and optionally example_weight [b] float32 (0 for the
        rows that pad a last eval batch; absent means every example counts once).
        Packed rows (packing.py) have next_sentence_labels and next_sentence_weights [b, K]
        and next_sentence_log_probs [b, K, 2]: one example per instance slot of weight 1.
    """
    nsp_labels = tf.reshape(tf.cast(features["next_sentence_labels"], tf.int32), [-1])
    if NEXT_SENTENCE_WEIGHTS in features:
        # Packed: each instance is an example; empty slots weigh 0, as do their (0) predictions.
        example_weights = tf.reshape(tf.cast(features[NEXT_SENTENCE_WEIGHTS], tf.float32), [-1])
        weights = tf.cast(features["masked_lm_weights"], tf.float32)
    else:
        example_weights = features.get(EXAMPLE_WEIGHT)
        example_weights = (tf.ones(tf.shape(nsp_labels), tf.float32) if example_weights is None
                           else tf.cast(example_weights, tf.float32))
        weights = tf.cast(features["masked_lm_weights"], tf.float32) * example_weights[:, None]
    mlm_log_probs = outputs["masked_lm_log_probs"]
    mlm_nll = per_prediction_nll(mlm_log_probs, features["masked_lm_ids"])
    mlm_correct = tf.cast(tf.equal(tf.argmax(mlm_log_probs, -1, output_type=tf.int32),
                                   tf.cast(features["masked_lm_ids"], tf.int32)), tf.float32)
    nsp_log_probs = tf.reshape(outputs["next_sentence_log_probs"], [-1, 2])
    nsp_nll = per_prediction_nll(nsp_log_probs, nsp_labels)
    nsp_correct = tf.cast(tf.equal(tf.argmax(nsp_log_probs, -1, output_type=tf.int32), nsp_labels), tf.float32)
    return {
        "mlm_nll_sum": tf.reduce_sum(weights * mlm_nll),
        "mlm_correct_sum": tf.reduce_sum(weights * mlm_correct),
        "mlm_weight_sum": tf.reduce_sum(weights),
        "nsp_nll_sum": tf.reduce_sum(example_weights * nsp_nll),
        "nsp_correct_sum": tf.reduce_sum(example_weights * nsp_correct),
        "examples": tf.reduce_sum(example_weights),
    }


def replica_loss(terms: dict, global_weight_sum: tf.Tensor, global_batch_size: tf.Tensor) -> tf.Tensor:
    """This replica's share of the total loss; summed over replicas it is the original's loss.

    global_batch_size: the examples of the global batch (packed rows: the instances in them)."""
    return (terms["mlm_nll_sum"] / (global_weight_sum + 1e-5)
            + terms["nsp_nll_sum"] / global_batch_size)


def metrics_from_sums(sums: dict) -> dict:
    """The original's eval metrics from terms summed over batches and replicas."""
    mlm_loss = sums["mlm_nll_sum"] / (sums["mlm_weight_sum"] + 1e-5)
    nsp_loss = sums["nsp_nll_sum"] / tf.maximum(sums["examples"], 1.0)
    return {
        "masked_lm_accuracy": sums["mlm_correct_sum"] / tf.maximum(sums["mlm_weight_sum"], 1e-5),
        "masked_lm_loss": mlm_loss,
        "next_sentence_accuracy": sums["nsp_correct_sum"] / tf.maximum(sums["examples"], 1.0),
        "next_sentence_loss": nsp_loss,
        "loss": mlm_loss + nsp_loss,
    }
