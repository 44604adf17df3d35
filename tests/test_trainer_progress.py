"""Training progress: examples/s, tokens/s, phase and ETAs in the log and in TensorBoard."""
from __future__ import annotations

import logging
import math

import numpy as np
import tensorflow as tf
import tf_keras as keras

from components.bert.config import BertConfig
from components.trainer import input_pipeline, training_loop
from components.trainer.progress import ProgressMeter, format_duration
from components.trainer.run_fn import build_state
from conftest import TINY_PREDS, TINY_SEQ
from trainer_helpers import split_files, tiny_params


def test_meter_excludes_the_first_chunk_and_projects_the_phase_and_the_run():
    meter = ProgressMeter("phase1", phase_steps=100, interval_seconds=60, now=0.0,
                          later_steps=50, later_step_cost=4.0)
    # First chunk: 1 step, 30 s of tracing; not due yet (the interval has not passed).
    assert meter.update(step=1, num_steps=1, examples=8, tokens=800, seconds=30.0, now=30.0) is None
    # Then 9 steps at 2 s each.
    report = meter.update(step=10, num_steps=9, examples=72, tokens=7200, seconds=18.0, now=61.0)
    assert report is not None and not report.final
    assert report.examples_per_sec == 4.0 and report.tokens_per_sec == 400.0
    assert report.eta_phase_seconds == 90 * 2.0
    assert report.eta_run_seconds == 90 * 2.0 + 50 * 4.0 * 2.0
    assert "progress phase1: step 10/100 (10.0%)" in report.line()
    assert "ETA phase1 0:03:00" in report.line() and "ETA run 0:09:40" in report.line()
    # Not due again until 60 s later, except at the end of the phase.
    assert meter.update(step=20, num_steps=10, examples=80, tokens=8000, seconds=20.0, now=81.0) is None
    final = meter.update(step=100, num_steps=80, examples=640, tokens=64000, seconds=160.0, now=141.0)
    assert final is not None and final.final and final.eta_phase_seconds == 0.0


def test_chunks_are_cut_to_one_interval_at_the_measured_pace():
    meter = ProgressMeter("phase2", phase_steps=1000, interval_seconds=60, now=0.0)
    assert meter.chunk_steps(1000) == 1  # first call: trace with one step
    meter.update(step=1, num_steps=1, examples=8, tokens=1, seconds=20.0, now=20.0)
    assert meter.chunk_steps(1000) == 3  # 60 s at the first (tracing) pace
    meter.update(step=4, num_steps=3, examples=24, tokens=1, seconds=1.5, now=22.0)
    assert meter.chunk_steps(1000) == 120  # 0.5 s per step
    assert meter.chunk_steps(7) == 7
    assert ProgressMeter("p", 10, interval_seconds=0, now=0).chunk_steps(50) == 50


def test_format_duration():
    assert format_duration(3725.2) == "1:02:05"
    assert format_duration(2 * 86400 + 3 * 3600) == "2d 03:00:00"
    assert format_duration(math.nan) == "?"


def _scalars(summary_dir: str) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for path in tf.io.gfile.glob(f"{summary_dir}/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    values.setdefault(value.tag, []).append(float(tf.make_ndarray(value.tensor)))
    return values


def test_a_tiny_run_logs_progress_lines_and_tensorboard_scalars(independent_records, tmp_path, caplog):
    files = split_files(independent_records, "train")
    params = tiny_params(str(tmp_path / "ckpt"), num_train_steps=6, save_checkpoints_steps=6, iterations_per_loop=2)
    keras.utils.set_random_seed(3)
    state = build_state(BertConfig.from_dict(params.bert_config), params, tf.distribute.get_strategy())

    def dataset_fn(context):
        return input_pipeline.make_dataset(files, 8, TINY_SEQ, TINY_PREDS, is_training=True, seed=1,
                                           input_context=context)

    settings = training_loop.LoopSettings(
        num_train_steps=6, steps_per_execution=2, save_checkpoints_steps=6, keep_checkpoint_max=1,
        global_batch_size=8, phase="phase2", progress_interval_seconds=0.0, later_phase_steps=0)
    summary_dir = str(tmp_path / "train")
    with caplog.at_level(logging.INFO, logger="components.trainer.training_loop"):
        training_loop.train(state, dataset_fn, settings, str(tmp_path / "ckpt"), summary_dir)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress ")]
    assert len(lines) == 3  # interval 0: one per chunk of 2 steps
    assert lines[-1].startswith("progress phase2: step 6/6 (100.0%)")
    for line in lines:
        assert "examples/s" in line and "tokens/s" in line and "ETA phase2 " in line and "ETA run " in line

    scalars = _scalars(summary_dir)
    for tag in ("train/examples_per_sec", "train/tokens_per_sec", "train/eta_phase_seconds",
                "train/eta_run_seconds"):
        assert len(scalars.get(tag, [])) == 3, tag
    assert scalars["train/eta_phase_seconds"][-1] == 0.0
    # Real tokens, not padded positions: the records' input_mask ones per example, times the rate.
    mask_ones = []
    for record in tf.data.TFRecordDataset(files).take(64):
        example = tf.train.Example.FromString(record.numpy())
        mask_ones.append(sum(example.features.feature["input_mask"].int64_list.value))
    ratio = np.array(scalars["train/tokens_per_sec"]) / np.array(scalars["train/examples_per_sec"])
    assert np.all(ratio <= TINY_SEQ) and np.all(ratio >= min(mask_ones))
    assert np.mean(ratio) < TINY_SEQ  # the records have padding, which is not counted
