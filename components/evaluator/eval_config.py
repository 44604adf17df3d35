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

Retraining adds a baseline (the latest blessed model): both models are evaluated on the
same examples, and the candidate is blessed only if, besides the value bounds, its
accuracy is not below the baseline's by more than a tolerance (a TFMA change threshold,
HIGHER_IS_BETTER, absolute -tolerance: candidate - baseline >= -tolerance). With no
baseline (the first run) the TFX Evaluator drops the baseline ModelSpec and every change
threshold (it calls tfma.utils.update_eval_config_with_defaults with rubber_stamp=True),
so that run is judged on the value bounds alone.
"""
from __future__ import annotations

import json

import tensorflow_model_analysis as tfma

from components.evaluator.names import BASELINE, CANDIDATE, METRIC_NAMES  # noqa: F401 - re-exported

MASKED_LM_OUTPUT = "masked_lm"
NEXT_SENTENCE_OUTPUT = "next_sentence"


def _metric(class_name: str, name: str, lower_bound: float | None = None, max_drop: float | None = None,
            **config) -> tfma.MetricConfig:
    metric = tfma.MetricConfig(class_name=class_name, config=json.dumps({"name": name, **config}))
    if lower_bound is not None:
        metric.threshold.value_threshold.CopyFrom(tfma.GenericValueThreshold(lower_bound={"value": lower_bound}))
    if max_drop is not None:
        metric.threshold.change_threshold.CopyFrom(tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -max_drop}))
    return metric


def _model_spec(**kwargs) -> tfma.ModelSpec:
    return tfma.ModelSpec(
        signature_name="serving_default",
        model_type=tfma.TF_GENERIC,
        label_keys={MASKED_LM_OUTPUT: "masked_lm_ids", NEXT_SENTENCE_OUTPUT: "next_sentence_labels"},
        example_weight_keys={MASKED_LM_OUTPUT: "masked_lm_weights"},
        **kwargs)


def make_eval_config(min_masked_lm_accuracy: float, min_next_sentence_accuracy: float,
                     max_masked_lm_accuracy_drop: float | None = None,
                     max_next_sentence_accuracy_drop: float | None = None) -> tfma.EvalConfig:
    """The EvalConfig for the TFX Evaluator; the model is blessed only above both bounds.

    TFMA blesses nothing without a threshold ("missing_thresholds"), so the masked LM
    bound is always set, even at 0; a next-sentence bound of 0 is left out.

    Args:
      min_masked_lm_accuracy, min_next_sentence_accuracy: value bounds (absolute).
      max_masked_lm_accuracy_drop: if not None, the config compares a candidate with a
        baseline model (ModelSpecs "candidate" and "baseline", is_baseline=True) and the
        candidate's masked_lm_accuracy may be at most this much below the baseline's.
      max_next_sentence_accuracy_drop: the same for next_sentence_accuracy (None: no
        change threshold on it).
    """
    def bound(value: float) -> float | None:
        return value if value > 0 else None

    compare = max_masked_lm_accuracy_drop is not None or max_next_sentence_accuracy_drop is not None
    for flag, value in (("max_masked_lm_accuracy_drop", max_masked_lm_accuracy_drop),
                        ("max_next_sentence_accuracy_drop", max_next_sentence_accuracy_drop)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"--{flag} must be between 0 and 1 (an accuracy difference), got {value}")
    model_specs = ([_model_spec(name=CANDIDATE), _model_spec(name=BASELINE, is_baseline=True)] if compare
                   else [_model_spec()])
    return tfma.EvalConfig(
        model_specs=model_specs,
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(output_names=[MASKED_LM_OUTPUT], metrics=[
                _metric("SparseCategoricalAccuracy", "masked_lm_accuracy", min_masked_lm_accuracy,
                        max_masked_lm_accuracy_drop),
                _metric("SparseCategoricalCrossentropy", "masked_lm_loss", from_logits=True),
            ]),
            tfma.MetricsSpec(output_names=[NEXT_SENTENCE_OUTPUT], metrics=[
                _metric("SparseCategoricalAccuracy", "next_sentence_accuracy", bound(min_next_sentence_accuracy),
                        max_next_sentence_accuracy_drop),
                _metric("SparseCategoricalCrossentropy", "next_sentence_loss", from_logits=True),
            ]),
        ],
    )
