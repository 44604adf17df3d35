"""The compiled Vertex AI spec against a golden file, so that spec changes show in review, and
what Vertex AI's cache keys on for the Trainer: its inputs change with the trainer's code and
with the BERT config.

Regenerate the golden files (one phase, the retraining pipeline, and two phases) after an intended change with

    UPDATE_GOLDEN=1 python -m pytest tests/test_kubeflow_golden_spec.py

and review its diff like code.
"""
from __future__ import annotations

import difflib
import json
import os
import shutil

import pytest

from conftest import REPO_ROOT, TINY_PIPELINE_FLAGS
from kubeflow import runner
from pipeline import cli, code_version
from pipeline.config import local_default

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata", "expected_pipeline.json")
RETRAIN_GOLDEN = os.path.join(os.path.dirname(GOLDEN), "expected_retrain_pipeline.json")
GOLDEN_TWO_PHASE = os.path.join(os.path.dirname(GOLDEN), "expected_pipeline_two_phase.json")
# The tiny e2e's phase 2 (tests/test_two_phase_e2e.py).
TWO_PHASE_FLAGS = ["--phase2_max_seq_length", "64", "--phase2_max_predictions_per_seq", "10",
                   "--phase2_num_train_steps", "6", "--phase2_num_warmup_steps", "1"]
COMPILE_FLAGS = ["--pipeline_root", "gs://bucket/bert", "--image", "gcr.io/project/bert-tfx-pipeline:golden"]
# Values that change with the checkout or the installed SDK, not with the pipeline.
VOLATILE_CODE_VERSION = {"git_commit": "<GIT_COMMIT>", "git_dirty": "<GIT_DIRTY>", "source_hash": "<SOURCE_HASH>"}


def _trainer_custom_config(job: dict, task: str = "BertTrainer") -> tuple[dict, dict]:
    params = job["pipelineSpec"]["root"]["dag"]["tasks"][task]["inputs"]["parameters"]
    return params, json.loads(params["custom_config"]["runtimeValue"]["constant"])


def normalise(job: dict) -> dict:
    """The PipelineJob with SDK/TFX versions, the code version's commit, dirtiness and source
    hash, and the checkout's path replaced by markers."""
    job = json.loads(json.dumps(job).replace(REPO_ROOT, "<REPO_ROOT>"))
    job["pipelineSpec"]["sdkVersion"] = "<SDK_VERSION>"
    for label in ("tfx_version", "tfx_py_version"):
        if label in job.get("labels", {}):
            job["labels"][label] = f"<{label.upper()}>"
    for task in job["pipelineSpec"]["root"]["dag"]["tasks"]:
        if task.startswith("BertTrainer"):  # each phase's Trainer
            params, custom_config = _trainer_custom_config(job, task)
            custom_config["code_version"].update(VOLATILE_CODE_VERSION)
            params["custom_config"]["runtimeValue"]["constant"] = json.dumps(custom_config, sort_keys=True)
    # The data steps carry the code version as their own `code_version` parameter (JSON).
    for task in job["pipelineSpec"]["root"]["dag"]["tasks"].values():
        parameter = task.get("inputs", {}).get("parameters", {}).get("code_version")
        if parameter and parameter["runtimeValue"].get("constant"):
            version = json.loads(parameter["runtimeValue"]["constant"])
            version.update(VOLATILE_CODE_VERSION)
            parameter["runtimeValue"]["constant"] = json.dumps(version, sort_keys=True)
    # Each container's code check carries the code version too (kubeflow/code_check.py).
    for executor in job["pipelineSpec"]["deploymentSpec"]["executors"].values():
        command = executor.get("container", {}).get("command", [])
        if command[:4] == ["python", "-m", "kubeflow.code_check", "--code_version"]:
            version = json.loads(command[4])
            version.update({k: v for k, v in VOLATILE_CODE_VERSION.items() if k in version})
            command[4] = json.dumps(version, sort_keys=True)
    return job


def _render(job: dict) -> str:
    return json.dumps(job, indent=2, sort_keys=True) + "\n"


def _compile_cli(tmp_path, *extra) -> dict:
    out = tmp_path / "pipeline.json"
    assert cli.main(["compile", "--output", str(out)] + COMPILE_FLAGS + TINY_PIPELINE_FLAGS + list(extra)) == 0
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def _check_against(golden: str, rendered: str) -> None:
    if os.environ.get("UPDATE_GOLDEN"):
        os.makedirs(os.path.dirname(golden), exist_ok=True)
        staging = golden + ".partial"
        with open(staging, "w", encoding="utf-8") as f:
            f.write(rendered)
        os.replace(staging, golden)
    with open(golden, encoding="utf-8") as f:
        expected = f.read()
    if rendered != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), rendered.splitlines(True),
                                            os.path.basename(golden), "compiled", n=2))
        pytest.fail(f"The compiled spec differs from {golden}; if intended, regenerate it with "
                    f"UPDATE_GOLDEN=1 and review the diff:\n{diff[:6000]}")


@pytest.mark.parametrize("golden,extra", [
    (GOLDEN, []),
    # The retraining spec: its resolver tasks, and the inputs they feed marked isOptional.
    (RETRAIN_GOLDEN, ["--retrain", "--max_masked_lm_accuracy_drop", "0.01"]),
], ids=["pipeline", "retrain"])
def test_compiled_spec_matches_the_golden_file(tmp_path, golden, extra):
    _check_against(golden, _render(normalise(_compile_cli(tmp_path, *extra))))


def test_two_phase_spec_matches_its_golden_file(tmp_path):
    """Two-phase pretraining (docs/two_phase.md): phase 2's data and Trainer, wired to phase 1's."""
    _check_against(GOLDEN_TWO_PHASE, _render(normalise(_compile_cli(tmp_path, *TWO_PHASE_FLAGS))))


@pytest.mark.parametrize("golden, trainers", [(GOLDEN, ["BertTrainer"]),
                                              (GOLDEN_TWO_PHASE, ["BertTrainer", "BertTrainerPhase2"])])
def test_golden_spec_is_schema_2_1_and_names_no_volatile_value(golden, trainers):
    with open(golden, encoding="utf-8") as f:
        spec = json.load(f)
    assert spec["pipelineSpec"]["schemaVersion"] == "2.1.0"
    for task in trainers:
        _, custom_config = _trainer_custom_config(spec, task)
        assert custom_config["code_version"] == {**VOLATILE_CODE_VERSION, "package_version": "0.1.0"}
    assert REPO_ROOT not in json.dumps(spec)


def _tasks(job: dict) -> dict:
    return job["pipelineSpec"]["root"]["dag"]["tasks"]


def test_bert_config_changes_the_trainer_inputs_and_only_the_trainers(tmp_path):
    """Vertex AI's cache key holds a task's inputs: a new BERT config must miss the Trainer's
    cache, while the data steps, which it does not affect, still hit theirs."""
    test_preset = _tasks(_compile_cli(tmp_path, "--bert_preset", "bert_test"))
    tiny_preset = _tasks(_compile_cli(tmp_path, "--bert_preset", "bert_tiny"))
    assert test_preset["BertTrainer"]["inputs"] != tiny_preset["BertTrainer"]["inputs"]
    for name in ("VocabularyGen", "PretrainingDataGen", "ImportExampleGen"):
        assert test_preset[name] == tiny_preset[name], name


def test_trainer_source_change_changes_the_trainer_inputs(tmp_path):
    """A copy of the sources with one line added to the training loop: its code version, as
    `bertpipe compile` reads it from a checkout, gives the Trainer other inputs."""
    root = tmp_path / "checkout"
    for top in code_version.SOURCE_DIRS:
        shutil.copytree(os.path.join(REPO_ROOT, top), root / top, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    config = local_default()
    before = code_version.current(str(root), environ={}).to_dict()
    loop = root / "components" / "trainer" / "training_loop.py"
    loop.write_text(loop.read_text() + "\n# a change to the training loop\n")
    after = code_version.current(str(root), environ={}).to_dict()
    assert before["source_hash"] != after["source_hash"]

    def trainer_inputs(version: dict, name: str) -> dict:
        path = runner.compile_pipeline(config, "gs://bucket/bert", str(tmp_path / name), "gcr.io/project/bert:1",
                                        code_version=version)
        with open(path, encoding="utf-8") as f:
            return _tasks(json.load(f))["BertTrainer"]["inputs"]

    assert trainer_inputs(before, "before.json") != trainer_inputs(after, "after.json")
    assert trainer_inputs(before, "again.json") == trainer_inputs(before, "before.json")  # deterministic
