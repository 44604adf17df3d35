"""The retraining gate in TFMA (what the TFX Evaluator runs): candidate and baseline on the same
examples, change thresholds on top of the value bounds, and no baseline on a first run."""
from __future__ import annotations

import pytest
import tensorflow_model_analysis as tfma

from components.evaluator.eval_config import BASELINE, CANDIDATE, METRIC_NAMES, make_eval_config
from components.evaluator.results import read_baseline_metrics, read_eval_metrics
from components.trainer.run_fn import pretrain
from trainer_helpers import split_files, tiny_params


@pytest.fixture(scope="module")
def model_dir(independent_records, tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline_model")
    params = tiny_params(str(out / "ckpt"), num_train_steps=4, save_checkpoints_steps=4, iterations_per_loop=4,
                         max_eval_steps=6)
    pretrain(params, split_files(independent_records, "train"), split_files(independent_records, "eval"),
             str(out / "model" / "Format-Serving"), str(out / "run"))
    return str(out / "model" / "Format-Serving")


def _analyse(eval_config: tfma.EvalConfig, candidate: str, baseline: str | None, data: str, output: str):
    """As tfx/components/evaluator/executor.py: defaults applied with rubber_stamp=True."""
    eval_config = tfma.utils.update_eval_config_with_defaults(eval_config, has_baseline=baseline is not None,
                                                              rubber_stamp=True)
    models = [tfma.default_eval_shared_model(eval_saved_model_path=candidate, model_name=CANDIDATE if baseline else "",
                                             eval_config=eval_config)]
    if baseline:
        models.append(tfma.default_eval_shared_model(eval_saved_model_path=baseline, model_name=BASELINE,
                                                     eval_config=eval_config))
    tfma.run_model_analysis(eval_shared_model=models if baseline else models[0], eval_config=eval_config,
                            data_location=data, output_path=output)
    return tfma.load_validation_result(output)


def _tfma_metrics(evaluation_uri: str, model_name: str) -> dict[str, float]:
    """The overall slice's metrics as TFMA's own loader gives them (the reader's oracle)."""
    result = tfma.load_eval_result(evaluation_uri, model_name=model_name or None)
    [overall] = [by_output for slice_key, by_output in result.slicing_metrics if slice_key == ()]
    return {name: value["doubleValue"] for by_sub_key in overall.values() for metrics in by_sub_key.values()
            for name, value in metrics.items() if name in METRIC_NAMES}


def test_candidate_equal_to_baseline_passes_a_zero_drop(model_dir, independent_records, tmp_path):
    data = split_files(independent_records, "eval")[0]
    config = make_eval_config(0.0, 0.0, max_masked_lm_accuracy_drop=0.0, max_next_sentence_accuracy_drop=0.0)
    validation = _analyse(config, model_dir, model_dir, data, str(tmp_path / "eq"))
    assert validation.validation_ok, validation
    candidate, baseline = read_eval_metrics(str(tmp_path / "eq")), read_baseline_metrics(str(tmp_path / "eq"))
    assert candidate == pytest.approx(baseline)
    # The reader (no TFMA import) gives what TFMA's loader gives, for each model of a comparison.
    assert candidate == _tfma_metrics(str(tmp_path / "eq"), CANDIDATE)
    assert baseline == _tfma_metrics(str(tmp_path / "eq"), BASELINE)


def test_change_threshold_is_applied_against_the_baseline(model_dir, independent_records, tmp_path):
    """Requiring an improvement of 0.01 over an identical baseline must fail, on the diff metric."""
    data = split_files(independent_records, "eval")[0]
    config = make_eval_config(0.0, 0.0, max_masked_lm_accuracy_drop=0.0)
    [accuracy] = [m for spec in config.metrics_specs for m in spec.metrics if '"masked_lm_accuracy"' in m.config]
    accuracy.threshold.change_threshold.absolute.value = 0.01
    validation = _analyse(config, model_dir, model_dir, data, str(tmp_path / "worse"))
    assert not validation.validation_ok
    failures = str(validation.metric_validations_per_slice)
    assert "masked_lm_accuracy" in failures and "is_diff: true" in failures


def test_first_run_without_baseline_is_judged_on_value_bounds(model_dir, independent_records, tmp_path):
    data = split_files(independent_records, "eval")[0]
    config = make_eval_config(0.0, 0.0, max_masked_lm_accuracy_drop=0.0)
    assert _analyse(config, model_dir, None, data, str(tmp_path / "first")).validation_ok
    assert read_baseline_metrics(str(tmp_path / "first")) is None
    too_high = make_eval_config(1.01, 0.0, max_masked_lm_accuracy_drop=0.0)
    assert not _analyse(too_high, model_dir, None, data, str(tmp_path / "high")).validation_ok


def test_drop_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="--max_masked_lm_accuracy_drop must be between 0 and 1"):
        make_eval_config(0.0, 0.0, max_masked_lm_accuracy_drop=-0.1)
