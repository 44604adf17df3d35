"""Reads a pipeline's lineage from Vertex AI: its PipelineJobs' task details (Vertex ML Metadata).

Each PipelineJob is one run. Each task detail carries its execution (state, and metadata
holding the task's input parameters, i.e. the TFX execution properties, named `input:<name>`;
plain names are read as well) and its input and output
artifacts by key (the TFX keys: `examples`, `model`, `baseline_model`, ...), each with
its resource name, URI, schema title (`tfx.Model`, `components.Vocabulary`) and
metadata (the TFX artifact properties and custom properties). That maps one to one onto
the Snapshot the ML-metadata reader builds, so every query runs unchanged.

Uses google-cloud-aiplatform's `PipelineJob.list` / `PipelineJob.get`, i.e. the
PipelineService's `list_pipeline_jobs` / `get_pipeline_job` (the test fakes exactly these).
"""
from __future__ import annotations

from typing import Any, Optional

from components.lineage.snapshot import Artifact, Execution, Run, Snapshot, canonical_type

# PipelineTaskDetail.State -> the MLMD execution state names the queries use.
_TASK_STATES = {"SUCCEEDED": "COMPLETE", "SKIPPED": "CACHED", "FAILED": "FAILED", "RUNNING": "RUNNING",
                "PENDING": "NEW", "CANCELLED": "CANCELED", "CANCELLING": "CANCELED", "CANCEL_PENDING": "CANCELED",
                "NOT_TRIGGERED": "NEW"}
# How Vertex names a task's input parameters in its execution's metadata.
_PARAMETER_PREFIX = "input:"


def _plain(value: Any) -> Any:
    """Struct numbers are doubles: 384.0 -> 384, so integer properties compare as MLMD's do."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _metadata(message) -> dict:
    """The `metadata` Struct of a proto-plus Artifact or Execution, as a dict (from the raw
    protobuf: proto-plus exposes a Struct field as a map of wrapped values)."""
    from google.protobuf import json_format

    struct = type(message).pb(message).metadata
    return _plain(json_format.MessageToDict(struct)) if struct.ByteSize() else {}


def _ms(timestamp) -> int:
    if timestamp is None:
        return 0
    if hasattr(timestamp, "timestamp"):  # proto-plus gives DatetimeWithNanoseconds
        return int(timestamp.timestamp() * 1000)
    return int(timestamp.seconds * 1000 + timestamp.nanos // 1_000_000)


def _artifact(artifact) -> Artifact:
    return Artifact(id=artifact.name, type=canonical_type(artifact.schema_title), uri=artifact.uri,
                    properties=_metadata(artifact), create_time_ms=_ms(artifact.create_time),
                    state=artifact.state.name if hasattr(artifact.state, "name") else str(artifact.state))


def job_to_run(job, artifacts: dict, executions: dict) -> Run:
    """Adds one PipelineJob proto's tasks and artifacts to `artifacts`/`executions`; returns its Run."""
    execution_ids = []
    for task in job.job_detail.task_details:
        if not task.inputs and not task.outputs:
            continue  # the job's root DAG task: nothing flows through it
        inputs, outputs = {}, {}
        for side, target in ((task.inputs, inputs), (task.outputs, outputs)):
            for key, artifact_list in side.items():
                for artifact in artifact_list.artifacts:
                    artifacts[artifact.name] = _artifact(artifact)
                    target.setdefault(key, []).append(artifact.name)
        metadata = _metadata(task.execution) if task.execution else {}
        properties = {k[len(_PARAMETER_PREFIX):] if k.startswith(_PARAMETER_PREFIX) else k: v
                      for k, v in metadata.items()}
        execution_id = task.execution.name if task.execution and task.execution.name else f"{job.name}/{task.task_id}"
        executions[execution_id] = Execution(
            id=execution_id, node_id=task.task_name, type=task.execution.schema_title if task.execution else "",
            state=_TASK_STATES.get(task.state.name, task.state.name), properties=properties, inputs=inputs,
            outputs=outputs, start_ms=_ms(task.start_time) or _ms(task.create_time), end_ms=_ms(task.end_time))
        execution_ids.append(execution_id)
    return Run(id=job.name.rsplit("/", 1)[-1], execution_ids=execution_ids, create_time_ms=_ms(job.create_time))


def read_snapshot(project: str, region: str, pipeline_name: str, pipeline_job: Optional[str] = None,
                  credentials=None, missing_ok: bool = False) -> Snapshot:
    """The runs of `pipeline_name` (or the one `pipeline_job`) in a project and region.

    Args:
      missing_ok: a pipeline without any job yet gives an empty Snapshot (a first run is
        being decided), instead of an error.

    Raises:
      ValueError: no credentials, no such job, no job of the pipeline (unless missing_ok),
        or an API error (one line).
    """
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions
    from google.cloud import aiplatform

    source = f"Vertex AI (project {project}, region {region})"
    try:
        if pipeline_job:
            jobs = [aiplatform.PipelineJob.get(pipeline_job, project=project, location=region,
                                               credentials=credentials)]
        else:
            jobs = aiplatform.PipelineJob.list(filter=f'pipeline_name="{pipeline_name}"', project=project,
                                               location=region, credentials=credentials)
        protos = [job.gca_resource for job in jobs]
    except auth_exceptions.DefaultCredentialsError as e:
        raise ValueError(f"{source}: no Google Cloud credentials; run `gcloud auth application-default login` "
                         "or set GOOGLE_APPLICATION_CREDENTIALS.") from e
    except api_exceptions.NotFound as e:
        raise ValueError(f"{source}: no pipeline job {pipeline_job!r} ({e.message}); `--pipeline_job` takes a "
                         "job name from the Vertex AI console or a full resource name.") from e
    except api_exceptions.GoogleAPICallError as e:
        raise ValueError(f"{source}: {type(e).__name__}: {e.message}") from e
    if not protos and not missing_ok:
        raise ValueError(f"{source} has no pipeline job of pipeline {pipeline_name!r}: give --pipeline_name as "
                         "compiled (`bertpipe compile --pipeline_name`), or --pipeline_job.")
    artifacts: dict[str, Artifact] = {}
    executions: dict[str, Execution] = {}
    runs = [job_to_run(job, artifacts, executions) for job in protos]
    runs.sort(key=lambda r: (r.create_time_ms, r.id), reverse=True)
    name = pipeline_name if not pipeline_job or not protos else (protos[0].pipeline_spec.get("pipelineInfo", {}).get("name")
                                                   or pipeline_name)
    return Snapshot(pipeline_name=name, source=source, artifacts=artifacts, executions=executions, runs=runs)
