"""TFMA (the TFX Evaluator's engine) on the exported model reproduces do_eval, and gates blessing."""
from __future__ import annotations

import pytest
import tensorflow_model_analysis as tfma

from components.evaluator.eval_config import METRIC_NAMES, make_eval_config
from components.evaluator.results import read_eval_metrics
from components.trainer.run_fn import pretrain
from trainer_helpers import split_files, tiny_params


@pytest.fixture(scope="module")
def model_and_do_eval(independent_records, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_model")
    # Batches of 10 over 48 eval examples: 4 full ones and a last one of 8 real examples padded
    # with 2 of weight 0. All of the split is scored, as TFMA scores it.
    params = tiny_params(str(out / "ckpt"), num_train_steps=8, save_checkpoints_steps=8, iterations_per_loop=4,
                         eval_batch_size=10, max_eval_steps=6)
    metrics = pretrain(params, split_files(independent_records, "train"), split_files(independent_records, "eval"),
                       str(out / "serving"), str(out / "run"))
    assert metrics["eval_examples"] == 48 and metrics["eval_scope"] == "all"
    return str(out / "serving"), metrics


def _analyse(model_dir: str, data: str, output: str, min_accuracy: float):
    eval_config = make_eval_config(min_masked_lm_accuracy=min_accuracy, min_next_sentence_accuracy=0.0)
    shared = tfma.default_eval_shared_model(eval_saved_model_path=model_dir, eval_config=eval_config)
    tfma.run_model_analysis(eval_shared_model=shared, eval_config=eval_config, data_location=data,
                            output_path=output)
    return tfma.load_validation_result(output)


def test_tfma_metrics_equal_do_eval_and_gate_blessing(model_and_do_eval, independent_records, tmp_path):
    model_dir, do_eval = model_and_do_eval
    data = split_files(independent_records, "eval")[0]
    validation = _analyse(model_dir, data, str(tmp_path / "pass"), min_accuracy=0.0)
    assert validation.validation_ok
    tfma_metrics = read_eval_metrics(str(tmp_path / "pass"))
    for name in METRIC_NAMES:
        # The original divides the MLM loss by sum(w) + 1e-5, TFMA by sum(w): equal to ~1e-7 here.
        assert tfma_metrics[name] == pytest.approx(do_eval[name], rel=1e-4, abs=1e-5), name

    failing = _analyse(model_dir, data, str(tmp_path / "fail"), min_accuracy=do_eval["masked_lm_accuracy"] + 0.5)
    assert not failing.validation_ok
    assert "masked_lm_accuracy" in str(failing.metric_validations_per_slice)
