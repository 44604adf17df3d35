"""Reading the Evaluator's figures back: the four do_eval metrics of the overall slice."""
from __future__ import annotations

import math

from components.evaluator.eval_config import METRIC_NAMES


def read_eval_metrics(evaluation_uri: str) -> dict[str, float]:
    """{masked_lm_accuracy, masked_lm_loss, next_sentence_accuracy, next_sentence_loss} of a
    ModelEvaluation artifact (the overall slice).

    Raises:
      ValueError: a metric is missing from the evaluation.
    """
    import tensorflow_model_analysis as tfma  # Deferred: heavy, and only readers of results need it.

    result = tfma.load_eval_result(evaluation_uri)
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
