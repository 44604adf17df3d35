"""`bertpipe compile` with two phases: one spec, both Trainers as Vertex AI CustomJobs, each on
its own machine (`--trainer_*` for phase 1, `--phase2_trainer_*` for phase 2)."""
from __future__ import annotations

import json
import re

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import cli

BASE = ["--pipeline_root", "gs://bucket/root", "--image", "gcr.io/proj/bert:1", "--region", "us-central1",
        "--project", "my-project", "--max_seq_length", "32", "--max_predictions_per_seq", "5",
        "--train_batch_size", "16"]
PHASE2 = ["--phase2_max_seq_length", "128", "--phase2_max_predictions_per_seq", "20",
          "--phase2_num_train_steps", "100", "--phase2_num_warmup_steps", "10", "--phase2_train_batch_size", "8"]
PHASE1_MACHINE = ["--trainer_machine_type", "n1-standard-16"]
PHASE2_MACHINE = ["--phase2_trainer_machine_type", "a2-highgpu-1g", "--phase2_trainer_gpu", "NVIDIA_TESLA_A100"]


def _compile(tmp_path, *flags) -> dict:
    out = tmp_path / "pipeline.json"
    assert cli.main(["compile", "--output", str(out)] + BASE + list(flags)) == 0
    return json.loads(out.read_text())


def _custom_config(job: dict, task: str) -> dict:
    params = job["pipelineSpec"]["root"]["dag"]["tasks"][task]["inputs"]["parameters"]
    return json.loads(params["custom_config"]["runtimeValue"]["constant"])


def _machines(custom_config: dict) -> list[dict]:
    return [pool["machine_spec"] for pool in
            custom_config["ai_platform_training_args"]["job_spec"]["worker_pool_specs"]]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    return _compile(tmp_path_factory.mktemp("two_phase"), *(PHASE2 + PHASE1_MACHINE + PHASE2_MACHINE))


def test_two_phase_spec_parses_with_phase2_tasks_wired_to_phase1(compiled):
    spec = json_format.ParseDict(compiled["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    assert set(spec.root.dag.tasks) == {"VocabularyGen", "PretrainingDataGen", "ImportExampleGen",
                                        "PretrainingDataGenPhase2", "ImportExampleGenPhase2", "BertTrainer",
                                        "BertTrainerPhase2", "Evaluator", "Pusher"}
    tasks = compiled["pipelineSpec"]["root"]["dag"]["tasks"]
    base = tasks["BertTrainerPhase2"]["inputs"]["artifacts"]["base_model"]["taskOutputArtifact"]
    assert base == {"producerTask": "BertTrainer", "outputArtifactKey": "model"}
    assert tasks["Pusher"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == "BertTrainerPhase2"
    assert tasks["Evaluator"]["inputs"]["artifacts"]["examples"]["taskOutputArtifact"]["producerTask"] == \
        "ImportExampleGenPhase2"


def test_each_phase_trains_on_its_own_machine_with_its_own_settings(compiled):
    executors = compiled["pipelineSpec"]["deploymentSpec"]["executors"]
    for task in ("BertTrainer", "BertTrainerPhase2"):
        assert executors[f"{task}_executor"]["container"]["args"][1] == \
            "components.trainer.vertex_component.VertexBertTrainerExecutor", task
    first, second = _custom_config(compiled, "BertTrainer"), _custom_config(compiled, "BertTrainerPhase2")
    assert _machines(first) == [{"machine_type": "n1-standard-16"}]
    assert _machines(second) == [{"machine_type": "a2-highgpu-1g", "accelerator_type": "NVIDIA_TESLA_A100",
                                  "accelerator_count": 1}]
    assert (first["phase"], first["max_seq_length"], first["training"]["train_batch_size"]) == (1, 32, 16)
    assert (second["phase"], second["max_seq_length"], second["training"]["train_batch_size"]) == (2, 128, 8)
    assert second["training"]["num_train_steps"] == 100


def test_phase2_without_a_machine_of_its_own_trains_on_phase1s(tmp_path):
    job = _compile(tmp_path, *(PHASE2 + PHASE1_MACHINE))
    assert _machines(_custom_config(job, "BertTrainerPhase2")) == [{"machine_type": "n1-standard-16"}]


@pytest.mark.parametrize("flags, message", [
    (PHASE1_MACHINE + PHASE2_MACHINE, "--phase2_trainer_\\* given without a phase 2"),
    (PHASE2 + ["--phase2_trainer_gpu", "NVIDIA_TESLA_K80", "--phase2_trainer_machine_type", "n1-standard-8"],
     "--phase2_trainer_gpu 'NVIDIA_TESLA_K80' is not a Vertex AI GPU name"),
    (PHASE2 + ["--phase2_trainer_machine_type", "a2-highgpu-4g", "--phase2_trainer_gpu", "NVIDIA_TESLA_A100",
               "--phase2_trainer_workers", "3"],
     "--phase2_train_batch_size 8 does not split over phase 2's Trainer's 12 replicas"),
    (PHASE2 + ["--phase2_trainer_tpu", "v5e-4", "--phase2_trainer_image", "gcr.io/proj/bert-tpu:1"],
     "--phase2_trainer_tpu and --trainer_tpu must be given together"),
])
def test_bad_phase2_machines_are_refused_naming_phase2s_flags(tmp_path, capsys, flags, message):
    assert cli.main(["compile", "--output", str(tmp_path / "p.json")] + BASE + flags) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert re.search(message, err), err
    assert not (tmp_path / "p.json").exists()
