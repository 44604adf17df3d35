"""The Trainer as a Vertex AI CustomJob: compiled spec, the job request at the client
boundary, and what each replica of the job runs.

Vertex AI is not reachable here. TFX's Vertex training client creates
`google.cloud.aiplatform.gapic.JobServiceClient(client_options=...)` and calls
`create_custom_job(parent=, custom_job=)` then `get_custom_job(name=, retry=)` until the
job's state is final. The fake below does what the real client does with those
arguments (builds the real `CreateCustomJobRequest`, which rejects unknown fields) and
answers with real `CustomJob` messages whose state moves PENDING -> RUNNING -> final.
"""
from __future__ import annotations

import json
import os

import pytest
from google.cloud.aiplatform_v1.types import custom_job as custom_job_types
from google.cloud.aiplatform_v1.types import job_service
from google.cloud.aiplatform_v1.types.job_state import JobState
from google.rpc import status_pb2
from tfx.dsl.components.base import base_executor
from tfx.extensions.google_cloud_ai_platform import runner as tfx_cloud_runner
from tfx.extensions.google_cloud_ai_platform import training_clients
from tfx.types import artifact_utils, standard_artifacts

from components.artifacts import Vocabulary
from components.trainer.vertex_component import VertexBertTrainerExecutor
from pipeline import cli

TRAINER_FLAGS = ["--trainer_machine_type", "a2-highgpu-8g", "--trainer_gpu", "NVIDIA_TESLA_A100",
                 "--trainer_gpu_count", "8", "--trainer_workers", "3", "--region", "us-central1",
                 "--project", "my-project", "--trainer_image", "gcr.io/my-project/bert-train:2",
                 "--train_batch_size", "48", "--eval_batch_size", "24", "--step_cpu", "8", "--step_memory_gb", "32"]


class FakeJobServiceClient:
    """google.cloud.aiplatform.gapic.JobServiceClient's create/get_custom_job, in memory."""

    instances: list["FakeJobServiceClient"] = []
    final_state = JobState.JOB_STATE_SUCCEEDED

    def __init__(self, client_options=None, **_):
        self.endpoint = (client_options or {}).get("api_endpoint")
        self.requests: list[job_service.CreateCustomJobRequest] = []
        self.polls = 0
        FakeJobServiceClient.instances.append(self)

    def create_custom_job(self, parent=None, custom_job=None, **_):
        # As the real client: the flattened arguments become the request message.
        request = job_service.CreateCustomJobRequest(parent=parent, custom_job=custom_job)
        self.requests.append(request)
        created = custom_job_types.CustomJob(request.custom_job)
        created.name = f"{parent}/customJobs/4242"
        created.state = JobState.JOB_STATE_PENDING
        return created

    def get_custom_job(self, name=None, retry=None, **_):
        # One client object per job; TFX polls a fresh one after a ConnectionError only.
        self.polls += 1
        state = JobState.JOB_STATE_RUNNING if self.polls < 3 else FakeJobServiceClient.final_state
        job = custom_job_types.CustomJob(name=name, state=state)
        if state == JobState.JOB_STATE_FAILED:
            job.error = status_pb2.Status(code=9, message="The replica workerpool1-0 exited with a non-zero status of 1.")
        return job


@pytest.fixture
def fake_vertex(monkeypatch):
    FakeJobServiceClient.instances = []
    FakeJobServiceClient.final_state = JobState.JOB_STATE_SUCCEEDED
    monkeypatch.setattr(training_clients.gapic, "JobServiceClient", FakeJobServiceClient)
    monkeypatch.setattr(tfx_cloud_runner, "_POLLING_INTERVAL_IN_SECONDS", 0)
    return FakeJobServiceClient


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("vertex_compile") / "pipeline.json"
    status = cli.main(["compile", "--output", str(out), "--pipeline_root", "gs://bucket/root",
                       "--image", "gcr.io/my-project/bert:1"] + TRAINER_FLAGS)
    assert status == 0
    return json.loads(out.read_text())


def _trainer_parameters(compiled) -> dict:
    params = compiled["pipelineSpec"]["root"]["dag"]["tasks"]["BertTrainer"]["inputs"]["parameters"]
    return {name: value["runtimeValue"]["constant"] for name, value in params.items()}


def test_compiled_trainer_launches_a_custom_job_and_steps_get_resources(compiled):
    executors = compiled["pipelineSpec"]["deploymentSpec"]["executors"]
    trainer = executors["BertTrainer_executor"]["container"]
    assert trainer["args"][1] == "components.trainer.vertex_component.VertexBertTrainerExecutor"
    assert trainer["image"] == "gcr.io/my-project/bert:1"  # the launcher runs on the pipeline image
    assert "resources" not in trainer  # it only polls the job
    custom_config = json.loads(_trainer_parameters(compiled)["custom_config"])
    assert custom_config["ai_platform_enable_vertex"] is True
    assert custom_config["ai_platform_vertex_region"] == "us-central1"
    pools = custom_config["ai_platform_training_args"]["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 2]
    assert custom_config["training"]["train_batch_size"] == 48
    for name in ("Evaluator", "PretrainingDataGen", "VocabularyGen", "Pusher"):
        resources = executors[f"{name}_executor"]["container"]["resources"]
        assert resources == {"cpuLimit": 8.0, "memoryLimit": 32.0}, name


def _artifacts(tmp_path):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    vocabulary = Vocabulary()
    vocabulary.uri = str(tmp_path / "vocabulary")
    os.makedirs(vocabulary.uri)
    with open(os.path.join(vocabulary.uri, "vocab.txt"), "w") as f:
        f.write("[PAD]\n[UNK]\n")
    model, model_run = standard_artifacts.Model(), standard_artifacts.ModelRun()
    model.uri, model_run.uri = str(tmp_path / "model"), str(tmp_path / "model_run")
    return {"examples": [examples], "vocabulary": [vocabulary]}, {"model": [model], "model_run": [model_run]}


def _submitting(fake_vertex) -> list:
    return [client for client in fake_vertex.instances if client.requests]


def _launch(compiled, tmp_path):
    inputs, outputs = _artifacts(tmp_path)
    executor = VertexBertTrainerExecutor(base_executor.BaseExecutor.Context(tmp_dir=str(tmp_path / "tmp")))
    executor.Do(inputs, outputs, _trainer_parameters(compiled))
    return inputs, outputs


def test_custom_job_request_has_the_machine_spec_workers_image_and_our_executor(compiled, fake_vertex, tmp_path):
    inputs, outputs = _launch(compiled, tmp_path)
    # The task that reports the Model to Vertex ML Metadata records its data and base model on it.
    [model] = outputs["model"]
    assert model.get_string_custom_property("spans") == "[]"
    assert model.has_custom_property("examples_fingerprint")
    # TFX makes one client to build the job and another to submit and poll it.
    assert {c.endpoint for c in fake_vertex.instances} == {"us-central1-aiplatform.googleapis.com"}
    [client] = _submitting(fake_vertex)
    [request] = client.requests
    assert request.parent == "projects/my-project/locations/us-central1"
    pools = request.custom_job.job_spec.worker_pool_specs
    assert [p.replica_count for p in pools] == [1, 2]  # chief + 2 workers
    for pool in pools:
        assert pool.machine_spec.machine_type == "a2-highgpu-8g"
        assert pool.machine_spec.accelerator_type.name == "NVIDIA_TESLA_A100"
        assert pool.machine_spec.accelerator_count == 8
        assert pool.container_spec.image_uri == "gcr.io/my-project/bert-train:2"
        command = list(pool.container_spec.command)
        assert command[:5] == ["python", "-m", "tfx.scripts.run_executor", "--executor_class_path",
                               "components.trainer.component.BertTrainerExecutor"]
        job_inputs = artifact_utils.parse_artifact_dict(command[command.index("--inputs") + 1])
        assert isinstance(job_inputs["vocabulary"][0], Vocabulary)
        assert job_inputs["vocabulary"][0].uri == inputs["vocabulary"][0].uri
    assert client.polls == 3  # polled until the final state


def test_a_failed_job_is_a_clear_error(compiled, fake_vertex, tmp_path):
    fake_vertex.final_state = JobState.JOB_STATE_FAILED
    with pytest.raises(RuntimeError) as raised:
        _launch(compiled, tmp_path)
    message = str(raised.value)
    assert "\n" not in message
    assert "projects/my-project/locations/us-central1/customJobs/4242" in message
    assert "JOB_STATE_FAILED" in message and "workerpool1-0 exited with a non-zero status" in message


def recording_run_fn(fn_args):
    """Stands in for the real run_fn in a replica: records what it was handed (in a file:
    TFX reloads a run_fn's module, so module state would not survive); writes a model when
    told to, as the chief's run_fn does."""
    from tensorflow.python.eager import context

    with open(os.environ["RECORDED_RUN_FN"], "w") as f:
        # Whether TensorFlow's runtime started before run_fn: MultiWorkerMirroredStrategy
        # (created first thing in run_fn) can configure its collectives only if it did not.
        json.dump({"vocab_file": fn_args.custom_config["vocab_file"],
                   "runtime_started": context.context()._initialized}, f)  # pylint: disable=protected-access
    if os.environ.get("RECORDED_RUN_FN_WRITES_MODEL"):
        os.makedirs(fn_args.serving_model_dir)


@pytest.mark.parametrize("role", ["chief", "worker"])
def test_each_replica_runs_bert_trainer_with_the_vocab_handed_to_run_fn(compiled, fake_vertex, tmp_path, monkeypatch,
                                                                         role):
    """The job's command, as a replica runs it (tfx.scripts.run_executor), with run_fn
    swapped for a recorder: the vocabulary reaches run_fn on every replica; a non-chief
    worker writes no model and still succeeds, a chief that writes none fails."""
    from tfx.scripts import run_executor

    inputs, _ = _launch(compiled, tmp_path)
    command = list(_submitting(fake_vertex)[0].requests[0].custom_job.job_spec.worker_pool_specs[0].container_spec.command)
    properties_at = command.index("--exec-properties") + 1
    exec_properties = json.loads(command[properties_at])
    exec_properties["run_fn"] = f"{__name__}.recording_run_fn"
    command[properties_at] = json.dumps(exec_properties)
    cluster = {"chief": ["c:2222"], "worker": ["w0:2222", "w1:2222"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": role, "index": 0}}))
    record = tmp_path / "recorded.json"
    monkeypatch.setenv("RECORDED_RUN_FN", str(record))

    args = run_executor.parse_flags(["run_executor"] + command[3:])
    if role == "chief":
        with pytest.raises(RuntimeError, match="run_fn failed to generate model"):
            run_executor.main(args)
        monkeypatch.setenv("RECORDED_RUN_FN_WRITES_MODEL", "1")
    run_executor.main(args)
    assert json.loads(record.read_text())["vocab_file"] == os.path.join(inputs["vocabulary"][0].uri, "vocab.txt")


def test_the_replica_command_reaches_run_fn_before_tensorflow_starts(compiled, fake_vertex, tmp_path):
    """The job's command run as a worker replica runs it, in a fresh process: run_fn gets
    the vocabulary, and nothing before it started TensorFlow's runtime, so run_fn can still
    create MultiWorkerMirroredStrategy."""
    import subprocess
    import sys

    from conftest import REPO_ROOT

    inputs, _ = _launch(compiled, tmp_path)
    command = list(_submitting(fake_vertex)[0].requests[0].custom_job.job_spec.worker_pool_specs[1].container_spec.command)
    properties_at = command.index("--exec-properties") + 1
    exec_properties = json.loads(command[properties_at])
    exec_properties["run_fn"] = f"{__name__}.recording_run_fn"
    command[properties_at] = json.dumps(exec_properties)
    assert command[:3] == ["python", "-m", "tfx.scripts.run_executor"]
    record = tmp_path / "recorded.json"
    cluster = {"chief": ["c:2222"], "worker": ["w0:2222", "w1:2222"]}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO_ROOT, os.path.join(REPO_ROOT, "tests")]),
           "RECORDED_RUN_FN": str(record),
           "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})}
    result = subprocess.run([sys.executable] + command[1:], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    recorded = json.loads(record.read_text())
    assert recorded == {"vocab_file": os.path.join(inputs["vocabulary"][0].uri, "vocab.txt"), "runtime_started": False}


def test_a_tpu_trainer_job_names_vertex_tpu_machine_and_builds_the_model_for_it(fake_vertex, tmp_path):
    out = tmp_path / "tpu.json"
    assert cli.main(["compile", "--output", str(out), "--pipeline_root", "gs://bucket/root",
                     "--image", "gcr.io/my-project/bert:1", "--trainer_tpu", "v5e", "--region", "us-west4",
                     "--project", "my-project", "--trainer_image", "gcr.io/my-project/bert-tpu:1"]) == 0
    compiled = json.loads(out.read_text())
    assert json.loads(_trainer_parameters(compiled)["custom_config"])["training"]["use_tpu"] is True
    _launch(compiled, tmp_path)
    [client] = _submitting(fake_vertex)
    assert client.endpoint == "us-west4-aiplatform.googleapis.com"
    [pool] = client.requests[0].custom_job.job_spec.worker_pool_specs
    assert pool.replica_count == 1
    assert pool.machine_spec.machine_type == "ct5lp-hightpu-4t"
    assert pool.machine_spec.accelerator_type.name == "TPU_V5_LITEPOD"
    assert pool.machine_spec.accelerator_count == 4 and pool.machine_spec.tpu_topology == "2x2"
    assert pool.container_spec.image_uri == "gcr.io/my-project/bert-tpu:1"
