"""The retraining gate in TFMA (what the TFX Evaluator runs): candidate and baseline on the same
examples, make_eval_config's change thresholds on top of the value bounds (against a baseline
that is really better), and no baseline on a first run."""
from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma

from components.evaluator.eval_config import BASELINE, CANDIDATE, METRIC_NAMES, make_eval_config
from components.evaluator.results import read_baseline_metrics, read_eval_metrics
from components.trainer.run_fn import pretrain
from conftest import make_example
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


def _constant_label_records(path: str, count: int, seed: int) -> str:
    """Records of the tiny schema whose masked tokens are all token 7: a model trained on them
    learns to predict 7 and scores a high masked_lm_accuracy; one trained on random tokens does not."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(count):
            example = make_example(rng)
            features = example.features.feature
            weights = features["masked_lm_weights"].float_list.value
            features["masked_lm_ids"].int64_list.value[:] = [7 if w > 0 else 0 for w in weights]
            writer.write(example.SerializeToString())
    return path


@pytest.fixture(scope="module")
def better_baseline(tmp_path_factory):
    """(eval file of constant-label records, a model trained on such records): the baseline a
    candidate trained on random tokens (`model_dir`) falls far below on masked_lm_accuracy."""
    out = tmp_path_factory.mktemp("better_baseline")
    train = _constant_label_records(str(out / "records" / "train" / "part-0.tfrecord"), 64, seed=11)
    data = _constant_label_records(str(out / "records" / "eval" / "part-0.tfrecord"), 32, seed=12)
    params = tiny_params(str(out / "ckpt"), num_train_steps=8, save_checkpoints_steps=8, iterations_per_loop=8,
                         learning_rate=1e-2, num_warmup_steps=0, max_eval_steps=4)
    pretrain(params, [train], [data], str(out / "model" / "Format-Serving"), str(out / "run"))
    return data, str(out / "model" / "Format-Serving")


def _failures(validation) -> set[tuple[str, bool]]:
    """(metric name, is_diff) of every threshold the validation failed."""
    return {(failure.metric_key.name, failure.metric_key.is_diff)
            for per_slice in validation.metric_validations_per_slice for failure in per_slice.failures}


def test_a_candidate_below_the_baseline_by_more_than_the_allowed_drop_is_not_blessed(model_dir, better_baseline,
                                                                                     tmp_path):
    """make_eval_config's own change thresholds, against a baseline that really is better: the
    masked LM drop (beyond the 0.05 allowed) fails, on the diff metric; the next-sentence drop
    of at most 1.0, which no accuracy difference can exceed, passes."""
    data, baseline_dir = better_baseline
    config = make_eval_config(0.0, 0.0, max_masked_lm_accuracy_drop=0.05, max_next_sentence_accuracy_drop=1.0)
    validation = _analyse(config, model_dir, baseline_dir, data, str(tmp_path / "worse"))
    candidate, baseline = read_eval_metrics(str(tmp_path / "worse")), read_baseline_metrics(str(tmp_path / "worse"))
    assert baseline["masked_lm_accuracy"] - candidate["masked_lm_accuracy"] > 0.05  # the premise
    assert not validation.validation_ok
    assert _failures(validation) == {("masked_lm_accuracy", True)}


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
