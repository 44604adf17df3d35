"""The Trainer in two-phase pretraining: phase 2 warm-starts phase 1's weights with a fresh
optimizer at another length, and keys its checkpoints on the directory phase 1 trained in,
so that a rerun after a kill in phase 2 resumes it."""
from __future__ import annotations

import dataclasses
import json
import os

import pytest
from tfx.types import standard_artifacts

from components.trainer import warm_start
from components.trainer.component import run_checkpoint_dir
from components.trainer.run_fn import pretrain
from conftest import write_records
from trainer_helpers import split_files, tiny_params


def _state(seq: int, optimizer: str = "adamw") -> warm_start.TrainedState:
    return warm_start.TrainedState(bert_config={"max_position_embeddings": 64}, max_seq_length=seq,
                                   max_predictions_per_seq=5, vocab_file="v", vocab_sha256="s",
                                   optimizer_type=optimizer, adam_bias_correction=None, global_step=0, total_steps=0)


def test_phase2_restores_weights_only_even_where_a_retrain_would_restore_the_optimizer():
    assert warm_start.plan_warm_start(_state(32), "base", _state(32)) == warm_start.WEIGHTS_AND_OPTIMIZER
    assert warm_start.plan_warm_start(_state(32), "base", _state(64), phase=2) == warm_start.WEIGHTS
    assert warm_start.plan_warm_start(_state(32), "base", _state(32), phase=2) == warm_start.WEIGHTS


def test_phase1_may_start_from_a_base_trained_at_phase2_length():
    """Retraining a two-phase run: the latest blessed model is a phase-2 model (64 here)."""
    assert warm_start.plan_warm_start(_state(64), "base", _state(32), phase=1) == warm_start.WEIGHTS_AND_OPTIMIZER
    with pytest.raises(ValueError, match="--max_seq_length 64, this run has 32"):
        warm_start.plan_warm_start(_state(64), "base", _state(32))  # one phase: refused as before


def _examples():
    examples = standard_artifacts.Examples()
    examples.uri, examples.span = "/ex/1", 0
    examples.set_string_custom_property("input_fingerprint", "f1")
    return examples


def _model(model_id: int, uri: str):
    model = standard_artifacts.Model()
    model.id, model.uri = model_id, uri
    return model


@pytest.fixture(scope="module")
def phase2_records(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("phase2_records"))
    write_records(os.path.join(root, "train", "part-0.tfrecord"), 32, seed=4, max_seq_length=64,
                  max_predictions_per_seq=10)
    write_records(os.path.join(root, "eval", "part-0.tfrecord"), 16, seed=5, max_seq_length=64,
                  max_predictions_per_seq=10)
    return root


@pytest.mark.e2e  # four tiny trainings with exports: ~40 s
def test_a_rerun_of_phase1_keeps_phase2s_checkpoint_dir_and_phase2_resumes(
        independent_records, phase2_records, tiny_vocab_file, tmp_path, caplog):
    """Phase 1 trained, phase 2 killed after its first checkpoint; the rerun retrains nothing of
    phase 1 (it resumes at its last step) but exports a NEW Model artifact: phase 2 must find
    its checkpoints anyway and go on from them."""
    phase1_dir = str(tmp_path / "ckpt" / "phase1" / "run-a")

    def phase1(model_uri: str) -> str:
        serving = os.path.join(model_uri, "Format-Serving")
        pretrain(dataclasses.replace(tiny_params(phase1_dir, vocab_file=tiny_vocab_file), phase=1),
                 split_files(independent_records, "train"), split_files(independent_records, "eval"), serving,
                 str(tmp_path / "run"))
        return serving

    first_model = _model(3, str(tmp_path / "model-3"))
    phase1(first_model.uri)
    phase2_root = str(tmp_path / "ckpt" / "phase2")
    phase2_dir = run_checkpoint_dir(phase2_root, [_examples()], [first_model], base_by_training=True)
    phase2 = dataclasses.replace(tiny_params(phase2_dir, vocab_file=tiny_vocab_file, num_train_steps=3,
                                             save_checkpoints_steps=3, iterations_per_loop=3),
                                 max_seq_length=64, max_predictions_per_seq=10, phase=2)
    # "Killed" after 3 of its 6 steps: a run of 3 steps leaves ckpt-3 in phase 2's directory.
    pretrain(phase2, split_files(phase2_records, "train"), split_files(phase2_records, "eval"),
             str(tmp_path / "p2-killed" / "Format-Serving"), str(tmp_path / "run2"),
             base_model=os.path.join(first_model.uri, "Format-Serving"))

    rerun_model = _model(9, str(tmp_path / "model-9"))
    phase1(rerun_model.uri)
    assert warm_start.load_trained_state(os.path.join(rerun_model.uri, "Format-Serving")).global_step == 6
    resumed_dir = run_checkpoint_dir(phase2_root, [_examples()], [rerun_model], base_by_training=True)
    assert resumed_dir == phase2_dir
    # Keyed on the artifact (as a one-phase retrain is), the rerun would start over elsewhere.
    assert run_checkpoint_dir(phase2_root, [_examples()], [rerun_model]) != \
        run_checkpoint_dir(phase2_root, [_examples()], [first_model])
    out = tmp_path / "p2" / "Format-Serving"
    caplog.set_level("INFO", logger="components")
    pretrain(dataclasses.replace(phase2, training=dataclasses.replace(phase2.training, num_train_steps=6),
                                 checkpoint_dir=resumed_dir),
             split_files(phase2_records, "train"), split_files(phase2_records, "eval"), str(out),
             str(tmp_path / "run3"), base_model=os.path.join(rerun_model.uri, "Format-Serving"))
    assert f"Resumed from {resumed_dir}/ckpt-3 at step 3." in caplog.text
    with open(tmp_path / "p2" / "Checkpoint" / "warm_start.json") as f:
        info = json.load(f)
    assert info["global_step"] == 6 and info["warm_start"] == warm_start.WEIGHTS
    assert info["total_steps"] == 12 and info["max_seq_length"] == 64

    # Retraining the two phases: the blessed phase-2 model (64) warm-starts the next phase 1 (32).
    retrained = tmp_path / "retrained-phase1"
    pretrain(dataclasses.replace(tiny_params(str(tmp_path / "ckpt" / "retrain"), vocab_file=tiny_vocab_file), phase=1),
             split_files(independent_records, "train"), split_files(independent_records, "eval"),
             str(retrained / "Format-Serving"), str(tmp_path / "run4"), base_model=str(out))
    with open(retrained / "Checkpoint" / "warm_start.json") as f:
        info = json.load(f)
    assert (info["max_seq_length"], info["base_model"], info["total_steps"]) == (32, str(out), 18)
