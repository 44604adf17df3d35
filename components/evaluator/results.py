"""Reading the Evaluator's figures back: the four do_eval metrics of the overall slice."""
from __future__ import annotations

import math
from typing import Optional

from components.evaluator.eval_config import BASELINE, CANDIDATE, METRIC_NAMES


def evaluated_models(evaluation_uri: str) -> list[str]:
    """The model names in a ModelEvaluation: [""] alone, or ["candidate", "baseline"] when
    the run compared the candidate with a baseline."""
    from tensorflow_model_analysis.writers import eval_config_writer  # Deferred: heavy.

    _, _, _, model_locations = eval_config_writer.load_eval_run(evaluation_uri)
    return sorted(model_locations, key=lambda name: (name != CANDIDATE, name))


def read_eval_metrics(evaluation_uri: str, model_name: Optional[str] = None) -> dict[str, float]:
    """{masked_lm_accuracy, masked_lm_loss, next_sentence_accuracy, next_sentence_loss} of a
    ModelEvaluation artifact (the overall slice).

    Args:
      evaluation_uri: the ModelEvaluation artifact's uri (TFMA's output path).
      model_name: which model's metrics when the evaluation compared two ("baseline"); by
        default the candidate (the only model when there was no baseline).

    Raises:
      ValueError: a metric is missing from the evaluation.
    """
    import tensorflow_model_analysis as tfma  # Deferred: heavy, and only readers of results need it.

    if model_name is None:
        model_name = CANDIDATE if CANDIDATE in evaluated_models(evaluation_uri) else ""
    result = tfma.load_eval_result(evaluation_uri, model_name=model_name or None)
    found: dict[str, float] = {}
    for slice_key, by_output in result.slicing_metrics:
        if slice_key != ():
            continue
        for by_sub_key in by_output.values():
            for metrics in by_sub_key.values():
                for name, value in metrics.items():
                    if name in METRIC_NAMES:
                        found[name] = float(value.get("doubleValue", math.nan))
    missing = [name for name in METRIC_NAMES if name not in found]
    if missing:
        raise ValueError(f"The evaluation at {evaluation_uri} lacks the metrics {missing}.")
    return {name: found[name] for name in METRIC_NAMES}


def read_baseline_metrics(evaluation_uri: str) -> Optional[dict[str, float]]:
    """The baseline's metrics of a ModelEvaluation, or None if it had no baseline."""
    if BASELINE not in evaluated_models(evaluation_uri):
        return None
    return read_eval_metrics(evaluation_uri, model_name=BASELINE)
