"""`bertpipe submit` against a fake Vertex AI at the client boundary.

google-cloud-aiplatform's PipelineJob gets its API client from
`initializer.global_config.create_client(client_class=..., location_override=...)` and
calls `create_pipeline_job(parent=, pipeline_job=, pipeline_job_id=, timeout=)`, then
`get_pipeline_job(name=, retry=)` while it waits. The fake builds the real
CreatePipelineJobRequest from those arguments (as the gapic client does) and answers with
real PipelineJob messages; the Cloud Storage bucket check `submit` makes first is faked
too. Everything between the command line and those two calls is the SDK's own code.
"""
from __future__ import annotations

import json
import os

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud.aiplatform import initializer, pipeline_jobs
from google.cloud.aiplatform_v1.types import pipeline_job as gca_pipeline_job
from google.cloud.aiplatform_v1.types import pipeline_service
from google.cloud.aiplatform_v1.types.pipeline_state import PipelineState
from google.rpc import status_pb2

from kubeflow import submit
from pipeline import cli

METRICS = {"masked_lm_accuracy": 0.25, "masked_lm_loss": 3.5, "next_sentence_accuracy": 0.75,
           "next_sentence_loss": 0.5}


def write_tfma_evaluation(directory: str, metrics: dict) -> str:
    """A ModelEvaluation directory as TFMA writes it (eval_config.json + metrics TFRecord of
    MetricsForSlice for the overall slice), built with TFMA's own protos."""
    import tensorflow as tf
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2
    from tensorflow_model_analysis.writers import eval_config_writer

    from components.evaluator.eval_config import make_eval_config

    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "eval_config.json"), "w") as f:
        f.write(eval_config_writer._serialize_eval_run(make_eval_config(0.0, 0.0), "examples", "tfrecord", {"": "m"}))
    record = metrics_for_slice_pb2.MetricsForSlice()
    record.slice_key.SetInParent()
    for name, value in metrics.items():
        entry = record.metric_keys_and_values.add()
        entry.key.name = name
        entry.value.double_value.value = value
    with tf.io.TFRecordWriter(os.path.join(directory, "metrics-00000-of-00001.tfrecord")) as writer:
        writer.write(record.SerializeToString())
    return directory


class FakePipelineClient:
    """The PipelineService client's create/get_pipeline_job, in memory."""

    def __init__(self, location, evaluation_uri, final_state):
        self.location = location
        self.evaluation_uri = evaluation_uri
        self.final_state = final_state
        self.requests: list[pipeline_service.CreatePipelineJobRequest] = []
        self.polls = 0
        self.job = None

    def create_pipeline_job(self, parent=None, pipeline_job=None, pipeline_job_id=None, timeout=None, **_):
        request = pipeline_service.CreatePipelineJobRequest(parent=parent, pipeline_job=pipeline_job,
                                                            pipeline_job_id=pipeline_job_id)
        self.requests.append(request)
        self.job = gca_pipeline_job.PipelineJob(request.pipeline_job)
        self.job.name = f"{parent}/pipelineJobs/{pipeline_job_id}"
        self.job.state = PipelineState.PIPELINE_STATE_PENDING
        return self.job

    def get_pipeline_job(self, name=None, retry=None, **_):
        assert name == self.job.name
        self.polls += 1
        job = gca_pipeline_job.PipelineJob(self.job)
        job.state = PipelineState.PIPELINE_STATE_RUNNING if self.polls < 3 else self.final_state
        if job.state == PipelineState.PIPELINE_STATE_SUCCEEDED:
            job.job_detail.task_details.extend(self._tasks())
        elif job.state == PipelineState.PIPELINE_STATE_FAILED:
            job.error = status_pb2.Status(code=9, message="The DAG failed because some tasks failed.\nBertTrainer.")
        return job

    def _tasks(self):
        succeeded = gca_pipeline_job.PipelineTaskDetail.State.SUCCEEDED
        evaluator = gca_pipeline_job.PipelineTaskDetail(task_name="Evaluator", state=succeeded)
        evaluator.outputs["evaluation"] = gca_pipeline_job.PipelineTaskDetail.ArtifactList(
            artifacts=[{"uri": self.evaluation_uri}])
        evaluator.outputs["blessing"] = gca_pipeline_job.PipelineTaskDetail.ArtifactList(
            artifacts=[{"uri": "gs://bucket/root/blessing", "metadata": {"blessed": 1}}])
        pusher = gca_pipeline_job.PipelineTaskDetail(task_name="Pusher", state=succeeded)
        pusher.outputs["pushed_model"] = gca_pipeline_job.PipelineTaskDetail.ArtifactList(
            artifacts=[{"uri": "gs://bucket/root/pushed", "metadata": {
                "pushed": 1, "pushed_destination": "gs://bucket/root/serving_model/1764135012"}}])
        return [evaluator, pusher]


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    """A compiled spec, plus one runtime parameter so --parameter has something to set."""
    out = tmp_path_factory.mktemp("submit") / "pipeline.json"
    assert cli.main(["compile", "--output", str(out), "--pipeline_root", "gs://bucket/root",
                     "--image", "gcr.io/my-project/bert:1"]) == 0
    spec = json.loads(out.read_text())
    spec["pipelineSpec"]["root"]["inputDefinitions"] = {"parameters": {"num_steps": {"type": "INT"}}}
    out.write_text(json.dumps(spec))
    return str(out)


@pytest.fixture
def fake_vertex(monkeypatch, tmp_path):
    state = {"final_state": PipelineState.PIPELINE_STATE_SUCCEEDED, "clients": [], "buckets": []}
    evaluation = write_tfma_evaluation(str(tmp_path / "evaluation"), METRICS)

    def create_client(client_class=None, credentials=None, location_override=None, **_):
        client = FakePipelineClient(location_override, evaluation, state["final_state"])
        state["clients"].append(client)
        return client

    monkeypatch.setattr(initializer.global_config, "create_client", create_client)
    monkeypatch.setattr(pipeline_jobs.gcs_utils, "create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist",
                        lambda **kwargs: state["buckets"].append(kwargs["output_artifacts_gcs_dir"]))
    monkeypatch.setattr(pipeline_jobs, "_JOB_WAIT_TIME", 0)
    # Application Default Credentials do not exist here; the SDK takes explicit ones.
    real_build = submit.build_job
    monkeypatch.setattr(submit, "build_job", lambda request, credentials=None: real_build(
        request, credentials=AnonymousCredentials()))
    return state


FLAGS = ["--project", "my-project", "--region", "us-central1", "--service_account",
         "runner@my-project.iam.gserviceaccount.com", "--network", "projects/123/global/networks/vpc",
         "--enable_caching", "true", "--label", "team=nlp", "owner=ml", "--label", "trigger=ci", "--encryption_key",
         "projects/my-project/locations/us-central1/keyRings/kr/cryptoKeys/k", "--parameter", "num_steps=500",
         "--display_name", "bert-nightly", "--pipeline_root", "gs://other-bucket/runs"]


def test_submit_sends_the_request_and_prints_the_console_link(spec_file, fake_vertex, capsys):
    assert cli.main(["submit", spec_file] + FLAGS) == 0
    [client] = [c for c in fake_vertex["clients"] if c.requests]
    assert client.location == "us-central1"
    [request] = client.requests
    assert request.parent == "projects/my-project/locations/us-central1"
    job = request.pipeline_job
    assert request.pipeline_job_id.startswith("bert-pretraining-")
    assert job.display_name == "bert-nightly"
    assert job.runtime_config.gcs_output_directory == "gs://other-bucket/runs"
    # Schema 2.1 specs take typed values in parameter_values (2.0's `parameters` stays empty).
    assert job.runtime_config.parameter_values["num_steps"] == 500 and not job.runtime_config.parameters
    assert job.service_account == "runner@my-project.iam.gserviceaccount.com"
    assert job.network == "projects/123/global/networks/vpc"
    assert dict(job.labels) == {"team": "nlp", "owner": "ml", "trigger": "ci"}
    assert job.encryption_spec.kms_key_name == "projects/my-project/locations/us-central1/keyRings/kr/cryptoKeys/k"
    spec = dict(job.pipeline_spec)
    assert spec["pipelineInfo"]["name"] == "bert-pretraining"
    caching = [task.get("cachingOptions", {}).get("enableCache", False)
               for task in spec["root"]["dag"]["tasks"].values()]
    assert len(caching) == 6 and all(caching)  # compiled without caching; --enable_caching true turned it on
    assert fake_vertex["buckets"] == ["gs://other-bucket/runs"]
    out = capsys.readouterr().out
    assert ("https://console.cloud.google.com/vertex-ai/locations/us-central1/pipelines/runs/"
            f"{request.pipeline_job_id}?project=my-project") in out
    assert client.polls == 0  # no --wait: no polling


def test_wait_prints_state_metrics_blessing_and_push_and_writes_the_summary(spec_file, fake_vertex, capsys, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    assert cli.main(["submit", spec_file, "--project", "my-project", "--region", "us-central1", "--wait",
                     "--summary_file", str(summary)]) == 0
    out = capsys.readouterr().out
    assert "Vertex AI pipeline run ended: PIPELINE_STATE_SUCCEEDED" in out
    assert "masked_lm_accuracy = 0.250000" in out and "next_sentence_loss = 0.500000" in out
    assert "blessed:        yes" in out
    assert "pushed to:      gs://bucket/root/serving_model/1764135012" in out
    text = summary.read_text()
    assert text.startswith("earlier step\n")
    assert "| masked_lm_loss | 3.500000 |" in text and "Blessed: **yes**" in text
    assert "`gs://bucket/root/serving_model/1764135012`" in text


def test_a_failed_run_exits_non_zero_with_its_error(spec_file, fake_vertex, capsys):
    fake_vertex["final_state"] = PipelineState.PIPELINE_STATE_FAILED
    assert cli.main(["submit", spec_file, "--project", "my-project", "--region", "us-central1", "--wait"]) == 1
    out = capsys.readouterr().out
    assert "PIPELINE_STATE_FAILED" in out and "error:          The DAG failed because some tasks failed." in out


@pytest.mark.parametrize("extra,message", [
    (["--pipeline_root", "/local/root"], "--pipeline_root '/local/root' is not a Cloud Storage location"),
    (["--label", "Team=nlp"], "--label Team=nlp is not a Vertex AI label"),
    (["--label", "team"], "--label 'team' is not KEY=VALUE"),
    (["--parameter", "steps=5"], "--parameter steps: the spec has no such runtime parameter (known: num_steps)"),
    (["--parameter", "num_steps=many"], "--parameter num_steps=many: the spec declares it INT"),
    (["--encryption_key", "my-key"], "--encryption_key 'my-key' is not a Cloud KMS key name"),
    (["--summary_file", "s.md"], "--summary_file needs --wait"),
])
def test_bad_input_is_one_line_before_any_request(spec_file, fake_vertex, capsys, extra, message):
    assert cli.main(["submit", spec_file, "--project", "my-project", "--region", "us-central1"] + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bertpipe submit: error: ") and "\n" not in err and message in err, err
    assert not any(c.requests for c in fake_vertex["clients"])


def test_spec_file_missing_or_not_a_pipeline_job(tmp_path, fake_vertex, capsys):
    not_json = tmp_path / "spec.json"
    not_json.write_text("{nope")
    other_json = tmp_path / "other.json"
    other_json.write_text('{"kind": "something else"}')
    for path, message in ((tmp_path / "missing.json", "Cannot read the spec"), (not_json, "is not JSON"),
                          (other_json, "is not a Vertex AI PipelineJob JSON")):
        assert cli.main(["submit", str(path), "--project", "my-project", "--region", "us-central1"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("bertpipe submit: error: ") and "\n" not in err and message in err, err


@pytest.mark.parametrize("text, expected", [("false", False), ("False", False), ("true", True), ("TRUE", True)])
def test_boolean_parameters_are_sent_as_booleans(spec_file, fake_vertex, tmp_path, text, expected):
    """A schema 2.1 BOOLEAN runtime parameter reaches the PipelineJob request as a JSON bool:
    "false" must not arrive as true (as bool("false") would make it)."""
    spec = json.loads(open(spec_file).read())
    spec["pipelineSpec"]["root"]["inputDefinitions"] = {"parameters": {"use_xla": {"parameterType": "BOOLEAN"}}}
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(spec))
    assert submit.typed_parameters(spec, {"use_xla": text}) == {"use_xla": expected}
    assert cli.main(["submit", str(path), "--project", "my-project", "--region", "us-central1",
                     "--parameter", f"use_xla={text}"]) == 0
    [client] = [c for c in fake_vertex["clients"] if c.requests]
    sent = client.requests[0].pipeline_job.runtime_config.parameter_values["use_xla"]
    assert sent is expected


@pytest.mark.parametrize("text", ["yes", "1", "no", ""])
def test_a_boolean_parameter_other_than_true_or_false_is_refused(spec_file, text):
    spec = json.loads(open(spec_file).read())
    spec["pipelineSpec"]["root"]["inputDefinitions"] = {"parameters": {"use_xla": {"parameterType": "BOOLEAN"}}}
    with pytest.raises(ValueError, match=f"--parameter use_xla={text}: the spec declares it BOOLEAN"):
        submit.typed_parameters(spec, {"use_xla": text})
