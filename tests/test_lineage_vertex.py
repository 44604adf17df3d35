"""`bertpipe lineage --vertex_project/--vertex_region`: Vertex AI pipeline jobs mapped onto the lineage queries.

Vertex AI cannot be reached here, so the PipelineService client's two methods the SDK calls
(`get_pipeline_job`, `list_pipeline_jobs`) are replaced by a fake that keeps the service's
semantics, read from google-cloud-aiplatform's source: resource names
`projects/P/locations/R/pipelineJobs/ID`, NotFound for an unknown name, the list filtered by
`pipeline_name="..."`. It returns real `aiplatform_v1` PipelineJob messages shaped as Vertex
reports a run of this pipeline: task details with their executions (state, `input:` parameter
metadata) and input/output artifacts keyed by the TFX keys, with `tfx.*` / `components.*`
schema titles and the artifacts' properties as metadata.
"""
from __future__ import annotations

import json
import re

import pytest
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud.aiplatform_v1.services.pipeline_service import PipelineServiceClient
from google.cloud.aiplatform_v1.types import artifact as gca_artifact
from google.cloud.aiplatform_v1.types import execution as gca_execution
from google.cloud.aiplatform_v1.types import pipeline_job as gca_pipeline_job
from google.cloud.aiplatform_v1.types import pipeline_state
from google.protobuf import struct_pb2, timestamp_pb2

from components.lineage import queries, vertex
from pipeline import cli

PROJECT, REGION, PIPELINE = "my-project", "us-central1", "bert-pretraining"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
STORE = f"{PARENT}/metadataStores/default"
ROOT = "gs://bucket/bert"
CODE = {"git_commit": "abc123", "git_dirty": False, "package_version": "0.1.0", "source_hash": "0123456789abcdef"}


def _struct(values: dict) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def _time(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=1_790_000_000 + seconds)


class _Ids:
    def __init__(self):
        self.next = 100

    def __call__(self) -> int:
        self.next += 1
        return self.next


def _artifact(ids: _Ids, schema_title: str, uri: str, **metadata) -> gca_artifact.Artifact:
    return gca_artifact.Artifact(name=f"{STORE}/artifacts/{ids()}", uri=uri, schema_title=schema_title,
                                 schema_version="0.0.1", metadata=_struct(metadata), create_time=_time(ids.next),
                                 state=gca_artifact.Artifact.State.LIVE)


def _task(ids: _Ids, task_name: str, state: str, inputs: dict, outputs: dict, parameters: dict,
          task_id: int) -> gca_pipeline_job.PipelineTaskDetail:
    def lists(side):
        return {key: gca_pipeline_job.PipelineTaskDetail.ArtifactList(artifacts=arts) for key, arts in side.items()}

    execution_state = {"SUCCEEDED": "COMPLETE", "FAILED": "FAILED"}[state]
    return gca_pipeline_job.PipelineTaskDetail(
        task_id=task_id, parent_task_id=1, task_name=task_name, create_time=_time(task_id), start_time=_time(task_id),
        end_time=_time(task_id + 1), state=gca_pipeline_job.PipelineTaskDetail.State[state],
        execution=gca_execution.Execution(
            name=f"{STORE}/executions/{ids()}", display_name=task_name, schema_title="system.ContainerExecution",
            state=gca_execution.Execution.State[execution_state],
            metadata=_struct({f"input:{k}": v for k, v in parameters.items()})),
        inputs=lists(inputs), outputs=lists(outputs))


def _job(ids: _Ids, job_id: str, start: int, train_steps: int, fail_trainer: bool = False,
         model_span: int = None, blessed: int = 1) -> gca_pipeline_job.PipelineJob:
    """A run as Vertex reports it; `model_span` is the span the Trainer records on its model."""
    run_root = f"{ROOT}/{job_id}"
    vocab = _artifact(ids, "components.Vocabulary", f"{run_root}/VocabularyGen_1/vocabulary", vocab_size=384,
                      do_lower_case=1, sha256="f" * 64,
                      corpus_files=json.dumps([{"path": "gs://bucket/corpus/a.txt", "size_bytes": 10, "sha256": "a" * 64}]))
    records = _artifact(ids, "components.PretrainingRecords", f"{run_root}/PretrainingDataGen_2/records",
                        records_dir=f"{ROOT}/pretraining_records/abc", num_train_instances=242, num_eval_instances=52,
                        options=json.dumps({"max_seq_length": 32}), stats=json.dumps({"num_documents": 27}))
    examples = _artifact(ids, "tfx.Examples", f"{run_root}/ImportExampleGen_3/examples", span=0,
                         split_names='["train", "eval"]')
    tasks = [
        gca_pipeline_job.PipelineTaskDetail(task_id=1, task_name=PIPELINE, state="SUCCEEDED",
                                            create_time=_time(start)),  # the root DAG task
        _task(ids, "VocabularyGen", "SUCCEEDED", {}, {"vocabulary": [vocab]},
              {"vocab_size": 400, "code_version": json.dumps(CODE)}, 2),
        _task(ids, "PretrainingDataGen", "SUCCEEDED", {"vocabulary": [vocab]}, {"records": [records]},
              {"records_dir": f"{ROOT}/pretraining_records/abc", "code_version": json.dumps(CODE)}, 3),
        _task(ids, "ImportExampleGen", "SUCCEEDED", {}, {"examples": [examples]},
              {"input_base": f"{ROOT}/pretraining_records/abc",
               "input_config": json.dumps({"splits": [{"name": "train", "pattern": "train/*"}]})}, 4),
    ]
    custom_config = json.dumps({"training": {"num_train_steps": train_steps}, "bert_config": {"hidden_size": 32},
                                "max_seq_length": 32, "max_predictions_per_seq": 5, "code_version": CODE})
    trainer_parameters = {"custom_config": custom_config, "train_args": json.dumps({"num_steps": train_steps})}
    if fail_trainer:
        tasks.append(_task(ids, "BertTrainer", "FAILED", {"examples": [examples], "vocabulary": [vocab]}, {},
                           trainer_parameters, 5))
        state = pipeline_state.PipelineState.PIPELINE_STATE_FAILED
    else:
        model = _artifact(ids, "tfx.Model", f"{run_root}/BertTrainer_5/model",
                          **({} if model_span is None else {"span": model_span}))
        evaluation = _artifact(ids, "tfx.ModelEvaluation", f"{run_root}/Evaluator_6/evaluation")
        blessing = _artifact(ids, "tfx.ModelBlessing", f"{run_root}/Evaluator_6/blessing", blessed=blessed)
        pushed = _artifact(ids, "tfx.PushedModel", f"{run_root}/Pusher_7/pushed_model", pushed=blessed,
                           pushed_destination=f"gs://bucket/serving/{job_id}")
        eval_config = {"metrics_specs": [{"metrics": [{"class_name": "SparseCategoricalAccuracy",
                                                       "config": json.dumps({"name": "masked_lm_accuracy"}),
                                                       "threshold": {"value_threshold": {"lower_bound": 0.1}}}]}]}
        tasks += [
            _task(ids, "BertTrainer", "SUCCEEDED", {"examples": [examples], "vocabulary": [vocab]},
                  {"model": [model]}, trainer_parameters, 5),
            _task(ids, "Evaluator", "SUCCEEDED", {"examples": [examples], "model": [model]},
                  {"evaluation": [evaluation], "blessing": [blessing]}, {"eval_config": json.dumps(eval_config)}, 6),
            _task(ids, "Pusher", "SUCCEEDED", {"model": [model], "model_blessing": [blessing]},
                  {"pushed_model": [pushed]}, {}, 7),
        ]
        state = pipeline_state.PipelineState.PIPELINE_STATE_SUCCEEDED
    return gca_pipeline_job.PipelineJob(
        name=f"{PARENT}/pipelineJobs/{job_id}", display_name=job_id, create_time=_time(start), state=state,
        pipeline_spec=_struct({"pipelineInfo": {"name": PIPELINE}}),
        job_detail=gca_pipeline_job.PipelineJobDetail(task_details=tasks))


class FakePipelineService:
    """The PipelineService's get/list over a dict of jobs, with the service's name and filter rules."""

    def __init__(self, jobs):
        self.jobs = {job.name: job for job in jobs}
        self.calls = []

    def get_pipeline_job(self, request=None, *, name=None, retry=None, timeout=None, metadata=()):
        name = name or (request["name"] if isinstance(request, dict) else request.name)
        self.calls.append(("get", name))
        if not re.fullmatch(r"projects/[^/]+/locations/[^/]+/pipelineJobs/[^/]+", name):
            raise api_exceptions.InvalidArgument(f"Invalid resource name {name}")
        if name not in self.jobs:
            raise api_exceptions.NotFound(f"PipelineJob {name} not found.")
        return self.jobs[name]

    def list_pipeline_jobs(self, request=None, *, parent=None, retry=None, timeout=None, metadata=()):
        request = dict(request or {})
        parent = parent or request["parent"]
        self.calls.append(("list", parent, request.get("filter")))
        found = [job for name, job in self.jobs.items() if name.startswith(f"{parent}/pipelineJobs/")]
        match = re.fullmatch(r'pipeline_name="([^"]*)"', request.get("filter") or "")
        if request.get("filter") and not match:
            raise api_exceptions.InvalidArgument(f"Unsupported filter {request['filter']}")
        if match:
            found = [job for job in found if job.pipeline_spec.get("pipelineInfo", {}).get("name") == match.group(1)]
        return found


@pytest.fixture
def fake_vertex(monkeypatch):
    ids = _Ids()
    service = FakePipelineService([_job(ids, "bert-pretraining-1", 0, train_steps=12),
                                   _job(ids, "bert-pretraining-2", 100, train_steps=18, fail_trainer=True),
                                   _job(ids, "bert-pretraining-3", 200, train_steps=24)])
    monkeypatch.setattr(PipelineServiceClient, "get_pipeline_job",
                        lambda self, *a, **k: service.get_pipeline_job(*a, **k))
    monkeypatch.setattr(PipelineServiceClient, "list_pipeline_jobs",
                        lambda self, *a, **k: service.list_pipeline_jobs(*a, **k))
    # The CLI uses application-default credentials; here they are anonymous (no call leaves the fake).
    monkeypatch.setattr("google.auth.default", lambda *a, **k: (AnonymousCredentials(), PROJECT))
    return service


def _metrics_for(uri: str) -> dict:
    """The evaluation files' reader, keyed by URI (the files would be on Cloud Storage)."""
    job = re.search(r"bert-pretraining-(\d)", uri).group(1)
    return {"masked_lm_accuracy": 0.1 * int(job), "masked_lm_loss": 5.0, "next_sentence_accuracy": 0.8,
            "next_sentence_loss": 0.5}


def _snapshot():
    return vertex.read_snapshot(PROJECT, REGION, PIPELINE, credentials=AnonymousCredentials())


def test_runs_from_pipeline_jobs_newest_first_with_the_failed_one(fake_vertex):
    runs = queries.runs(_snapshot(), _metrics_for)
    assert [r["run_id"] for r in runs] == ["bert-pretraining-3", "bert-pretraining-2", "bert-pretraining-1"]
    assert ("list", PARENT, f'pipeline_name="{PIPELINE}"') in fake_vertex.calls
    newest, failed, oldest = runs
    assert newest["status"] == "complete" and newest["blessed"] is True
    assert newest["pushed_to"] == "gs://bucket/serving/bert-pretraining-3"
    assert newest["metrics"]["masked_lm_accuracy"] == pytest.approx(0.3)
    assert newest["model"]["uri"] == f"{ROOT}/bert-pretraining-3/BertTrainer_5/model"
    assert newest["spans"] == [0] and newest["code_version"] == CODE
    assert failed["status"] == "failed" and failed["model"] is None
    assert {"node": "BertTrainer", "state": "FAILED"} in failed["steps"]
    assert {"node": "ImportExampleGen", "state": "COMPLETE"} in failed["steps"]
    assert oldest["metrics"]["masked_lm_accuracy"] == pytest.approx(0.1)


def test_model_lineage_maps_schema_titles_and_parameters(fake_vertex):
    snapshot = _snapshot()
    lineage = queries.model_lineage(snapshot, "latest", _metrics_for)
    assert lineage["model"]["run_id"] == "bert-pretraining-3"
    assert lineage["trainer"]["train_steps"] == 24 and lineage["trainer"]["hyperparameters"] == {"num_train_steps": 24}
    assert lineage["vocabulary"]["vocab_size"] == 384 and isinstance(lineage["vocabulary"]["vocab_size"], int)
    assert lineage["vocabulary"]["sha256"] == "f" * 64
    assert lineage["corpus_files"] == [{"path": "gs://bucket/corpus/a.txt", "size_bytes": 10, "sha256": "a" * 64}]
    [examples] = lineage["examples"]
    assert examples["split_counts"] == {"train": 242, "eval": 52}  # through records_dir == input_base
    assert examples["input_patterns"] == {"train": "train/*"}
    assert lineage["code_version"] == CODE
    [evaluation] = lineage["evaluations"]
    assert evaluation["thresholds"] == {"masked_lm_accuracy": {"lower_bound": 0.1}}
    assert evaluation["blessed"] is True
    assert lineage["pushes"][0]["destination"] == "gs://bucket/serving/bert-pretraining-3"
    # A model by its Vertex artifact id (the resource name's last part), and by its URI.
    model_id = lineage["model"]["id"].rsplit("/", 1)[-1]
    assert queries.find_model(snapshot, model_id).uri == lineage["model"]["uri"]
    oldest = queries.find_model(snapshot, f"{ROOT}/bert-pretraining-1/BertTrainer_5/model")
    assert queries.diff(snapshot, oldest.id, "latest", _metrics_for)["metrics"]["masked_lm_accuracy"]["b_minus_a"] \
        == pytest.approx(0.2)


def test_one_pipeline_job_by_name(fake_vertex):
    snapshot = vertex.read_snapshot(PROJECT, REGION, PIPELINE, pipeline_job="bert-pretraining-2",
                                    credentials=AnonymousCredentials())
    assert ("get", f"{PARENT}/pipelineJobs/bert-pretraining-2") in fake_vertex.calls
    assert [r.id for r in snapshot.runs] == ["bert-pretraining-2"]
    with pytest.raises(ValueError, match="holds no Model"):
        queries.find_model(snapshot, "latest")


def test_cli_uses_through_vertex(fake_vertex, capsys):
    snapshot = _snapshot()
    vocab = snapshot.artifacts_of_type("components.Vocabulary")[-1]  # job 1's
    status = cli.main(["lineage", "uses", vocab.id.rsplit("/", 1)[-1], "--json",
                       "--vertex_project", PROJECT, "--vertex_region", REGION])
    assert status == 0
    result = json.loads(capsys.readouterr().out)["result"]
    models = [snapshot.artifacts[m].uri for m in result["models"]]
    assert models == [f"{ROOT}/bert-pretraining-1/BertTrainer_5/model"]


@pytest.mark.parametrize("flags, message", [
    (["--pipeline_job", "no-such-job"], "no pipeline job 'no-such-job'"),
    (["--pipeline_name", "other-pipeline"], "no pipeline job of pipeline 'other-pipeline'"),
])
def test_cli_bad_vertex_input_is_one_line(fake_vertex, capsys, flags, message):
    status = cli.main(["lineage", "runs", "--vertex_project", PROJECT, "--vertex_region", REGION] + flags)
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and err.startswith("bertpipe lineage: error:") and "Traceback" not in err


def test_vertex_needs_project_and_region(capsys):
    assert cli.main(["lineage", "runs", "--vertex_project", PROJECT]) == 2
    assert "--vertex_region" in capsys.readouterr().err
