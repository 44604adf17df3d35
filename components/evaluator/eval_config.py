"""TFMA EvalConfig reproducing run_pretraining.py's do_eval metrics, plus the blessing gate.

The exported model's serving_default signature (see components/trainer/export.py) returns
  masked_lm      float32 [B, P, V] log-probs at the masked positions
  next_sentence  float32 [B, 2] log-probs
TFMA feeds it serialized examples (model_type tf_generic) and takes labels and weights
from the same examples:
  masked_lm:     labels masked_lm_ids [B, P], example weights masked_lm_weights [B, P];
                 the per-slot weight reaches each metric's sample_weight, so padding
                 predictions (weight 0) count for nothing, as in the original.
  next_sentence: labels next_sentence_labels [B, 1], weight 1.
Built-in tf_keras metric classes then give exactly the original's figures:
  masked_lm_accuracy       = SparseCategoricalAccuracy (weighted)
  masked_lm_loss           = SparseCategoricalCrossentropy(from_logits=True) (weighted mean;
                             softmax of log-probs is the probabilities themselves)
  next_sentence_accuracy / next_sentence_loss likewise.
"""
from __future__ import annotations

import json

import tensorflow_model_analysis as tfma

MASKED_LM_OUTPUT = "masked_lm"
NEXT_SENTENCE_OUTPUT = "next_sentence"
METRIC_NAMES = ("masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy", "next_sentence_loss")


def _metric(class_name: str, name: str, lower_bound: float | None = None, **config) -> tfma.MetricConfig:
    metric = tfma.MetricConfig(class_name=class_name, config=json.dumps({"name": name, **config}))
    if lower_bound is not None:
        metric.threshold.CopyFrom(tfma.MetricThreshold(
            value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower_bound})))
    return metric


def make_eval_config(min_masked_lm_accuracy: float, min_next_sentence_accuracy: float) -> tfma.EvalConfig:
    """The EvalConfig for the TFX Evaluator; the model is blessed only above both bounds.

    TFMA blesses nothing without a threshold ("missing_thresholds"), so the masked LM
    bound is always set, even at 0; a next-sentence bound of 0 is left out.
    """
    def bound(value: float) -> float | None:
        return value if value > 0 else None

    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name="serving_default",
            model_type=tfma.TF_GENERIC,
            label_keys={MASKED_LM_OUTPUT: "masked_lm_ids", NEXT_SENTENCE_OUTPUT: "next_sentence_labels"},
            example_weight_keys={MASKED_LM_OUTPUT: "masked_lm_weights"},
        )],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(output_names=[MASKED_LM_OUTPUT], metrics=[
                _metric("SparseCategoricalAccuracy", "masked_lm_accuracy", min_masked_lm_accuracy),
                _metric("SparseCategoricalCrossentropy", "masked_lm_loss", from_logits=True),
            ]),
            tfma.MetricsSpec(output_names=[NEXT_SENTENCE_OUTPUT], metrics=[
                _metric("SparseCategoricalAccuracy", "next_sentence_accuracy", bound(min_next_sentence_accuracy)),
                _metric("SparseCategoricalCrossentropy", "next_sentence_loss", from_logits=True),
            ]),
        ],
    )
