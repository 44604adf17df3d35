"""A local ML-metadata store (SQLite) playing Vertex ML Metadata for `bertpipe run-spec`.

What the Vertex AI orchestrator records for a pipeline job, recorded the same way here so
that resolver tasks can be answered from it and lineage tools can read it:
  - contexts: `system.Pipeline` (the pipeline's name) and, as its child, `system.PipelineRun`
    (the job's name), as Vertex AI names them; and the same two under TFX's local names,
    `pipeline` and `pipeline_run`, plus a `node` context `<pipeline>.<task>` per task, which
    is how this project's lineage readers (and TFX's) find a run's executions;
  - one execution per task (`system.ContainerExecution`, `system.ImporterExecution` or
    `system.ResolverExecution`) named `<job>/<task>`, with its task name, state
    (RUNNING, then COMPLETE or FAILED) and input parameters (`input:<name>`);
  - its artifacts, whose type is the schema title (`tfx.Model`, `components.Vocabulary`),
    whose name is the resource name the task's ExecutorInput gave them, and whose Vertex
    metadata are custom properties (whole numbers as int, other numbers as double);
  - INPUT and OUTPUT events; a resolver's answers are linked by INTERNAL_OUTPUT events, as
    TFX's own orchestrator links them, so each artifact keeps one producing execution.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterable, Mapping, Optional

import ml_metadata as mlmd
from google.protobuf import json_format, struct_pb2
from kfp.pipeline_spec import pipeline_spec_pb2
from ml_metadata.proto import metadata_store_pb2

from kubeflow import metadata_queries

PIPELINE_CONTEXT_TYPE = "system.Pipeline"
RUN_CONTEXT_TYPE = "system.PipelineRun"
# TFX's local context types (LocalDagRunner's): what lineage readers of local stores follow.
TFX_PIPELINE_CONTEXT_TYPE = "pipeline"
TFX_RUN_CONTEXT_TYPE = "pipeline_run"
TFX_NODE_CONTEXT_TYPE = "node"
CONTAINER_EXECUTION_TYPE = "system.ContainerExecution"
IMPORTER_EXECUTION_TYPE = "system.ImporterExecution"
RESOLVER_EXECUTION_TYPE = "system.ResolverExecution"
TASK_NAME_PROPERTY = "task_name"

Event = metadata_store_pb2.Event
ArtifactLists = Mapping[str, Iterable[pipeline_spec_pb2.RuntimeArtifact]]


def open_store(metadata_path: str) -> mlmd.MetadataStore:
    """The SQLite store at `metadata_path`, created if missing."""
    os.makedirs(os.path.dirname(os.path.abspath(metadata_path)), exist_ok=True)
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return mlmd.MetadataStore(config)


def schema_title(type_schema: pipeline_spec_pb2.ArtifactTypeSchema) -> str:
    """`tfx.Model` from a type given as a schema title or as an instance schema (YAML)."""
    if type_schema.WhichOneof("kind") == "schema_title":
        return type_schema.schema_title
    if type_schema.WhichOneof("kind") == "instance_schema":
        import yaml  # pylint: disable=import-outside-toplevel

        return yaml.safe_load(type_schema.instance_schema).get("title", "tfx.Artifact")
    raise ValueError(f"Artifact type {type_schema} has neither a schema title nor an instance schema.")


def to_mlmd_value(value: Any) -> metadata_store_pb2.Value:
    """A JSON value (Vertex artifact metadata) as an MLMD value."""
    result = metadata_store_pb2.Value()
    if isinstance(value, bool):
        result.bool_value = value
    elif isinstance(value, (int, float)):
        if float(value).is_integer():
            result.int_value = int(value)
        else:
            result.double_value = float(value)
    elif isinstance(value, str):
        result.string_value = value
    else:
        result.struct_value.update({"value": value} if isinstance(value, list) else value)
    return result


def from_mlmd_value(value: metadata_store_pb2.Value) -> Any:
    """The JSON value an MLMD value stands for (numbers as floats, as Vertex returns them)."""
    which = value.WhichOneof("value")
    if which in ("int_value", "double_value"):
        return float(getattr(value, which))
    if which in ("string_value", "bool_value"):
        return getattr(value, which)
    if which == "struct_value":
        return json_format.MessageToDict(value.struct_value)
    return None


@dataclasses.dataclass
class RunContexts:
    pipeline: metadata_store_pb2.Context  # system.Pipeline: resolver queries are scoped to it
    run: metadata_store_pb2.Context
    tfx_pipeline: metadata_store_pb2.Context
    tfx_run: metadata_store_pb2.Context

    @property
    def all(self) -> list[metadata_store_pb2.Context]:
        return [self.pipeline, self.run, self.tfx_pipeline, self.tfx_run]


class LocalVertexMetadata:
    """Records one pipeline job's executions and artifacts; answers artifact filters."""

    def __init__(self, store: mlmd.MetadataStore, pipeline_name: str, job_name: str):
        self.store = store
        if store.get_context_by_type_and_name(RUN_CONTEXT_TYPE, job_name) is not None:
            raise ValueError(f"The metadata store already has a pipeline job named {job_name}.")
        pipeline, run = self._pipeline_and_run(PIPELINE_CONTEXT_TYPE, RUN_CONTEXT_TYPE, pipeline_name, job_name)
        tfx_pipeline, tfx_run = self._pipeline_and_run(TFX_PIPELINE_CONTEXT_TYPE, TFX_RUN_CONTEXT_TYPE,
                                                       pipeline_name, job_name)
        self.contexts = RunContexts(pipeline=pipeline, run=run, tfx_pipeline=tfx_pipeline, tfx_run=tfx_run)
        self.pipeline_name = pipeline_name
        self.job_name = job_name
        self._artifact_ids: dict[str, int] = {}  # resource name -> MLMD id, for input events
        self._node_contexts: dict[str, metadata_store_pb2.Context] = {}  # task name -> its node context

    def _context(self, type_name: str, name: str) -> metadata_store_pb2.Context:
        """The context of that type and name, created if missing."""
        context = self.store.get_context_by_type_and_name(type_name, name)
        if context is None:
            type_id = self.store.put_context_type(metadata_store_pb2.ContextType(name=type_name))
            [context_id] = self.store.put_contexts([metadata_store_pb2.Context(type_id=type_id, name=name)])
            [context] = self.store.get_contexts_by_id([context_id])
        return context

    def _pipeline_and_run(self, pipeline_type: str, run_type: str, pipeline_name: str, job_name: str):
        pipeline = self._context(pipeline_type, pipeline_name)
        run = self._context(run_type, job_name)
        self.store.put_parent_contexts([metadata_store_pb2.ParentContext(child_id=run.id, parent_id=pipeline.id)])
        return pipeline, run

    def _task_contexts(self, task_name: str) -> list[metadata_store_pb2.Context]:
        if task_name not in self._node_contexts:
            self._node_contexts[task_name] = self._context(TFX_NODE_CONTEXT_TYPE, f"{self.pipeline_name}.{task_name}")
        return self.contexts.all + [self._node_contexts[task_name]]

    # --- executions --------------------------------------------------------------------
    def start_execution(self, execution_type: str, task_name: str,
                        parameters: Mapping[str, struct_pb2.Value],
                        inputs: Optional[ArtifactLists] = None) -> metadata_store_pb2.Execution:
        """Registers a RUNNING execution of `task_name` with its parameters and INPUT events."""
        type_id = self.store.put_execution_type(metadata_store_pb2.ExecutionType(name=execution_type))
        execution = metadata_store_pb2.Execution(type_id=type_id, name=f"{self.job_name}/{task_name}",
                                                 last_known_state=metadata_store_pb2.Execution.RUNNING)
        execution.custom_properties[TASK_NAME_PROPERTY].string_value = task_name
        for name, value in parameters.items():
            execution.custom_properties[f"input:{name}"].CopyFrom(
                to_mlmd_value(json_format.MessageToDict(value)))
        execution_id, _, _ = self.store.put_execution(
            execution, self._input_events(inputs or {}), self._task_contexts(task_name))
        [execution] = self.store.get_executions_by_id([execution_id])
        return execution

    def finish_execution(self, execution: metadata_store_pb2.Execution, outputs: ArtifactLists,
                         state: int = metadata_store_pb2.Execution.COMPLETE,
                         event_type: int = Event.OUTPUT,
                         properties: Optional[Mapping[str, Any]] = None) -> None:
        """Marks the execution COMPLETE (or `state`) and records its output artifacts.

        An output that already is in the store (a resolver's answer, a reused import) is
        linked, not copied; a new one is written LIVE with its metadata.
        """
        execution.last_known_state = state
        for key, value in (properties or {}).items():
            execution.custom_properties[key].CopyFrom(to_mlmd_value(value))
        pairs = []
        for key, artifacts in outputs.items():
            for index, runtime in enumerate(artifacts):
                artifact = self._stored_or_new(runtime)
                pairs.append((artifact, _event(event_type, key, index)))
        task_name = execution.custom_properties[TASK_NAME_PROPERTY].string_value
        _, artifact_ids, _ = self.store.put_execution(execution, pairs, self._task_contexts(task_name))
        for (artifact, _), artifact_id in zip(pairs, artifact_ids):
            self._artifact_ids[artifact.name] = artifact_id

    def _input_events(self, inputs: ArtifactLists) -> list[tuple[metadata_store_pb2.Artifact, Event]]:
        pairs = []
        for key, artifacts in inputs.items():
            for index, runtime in enumerate(artifacts):
                pairs.append((self._stored_or_new(runtime), _event(Event.INPUT, key, index)))
        return pairs

    def _stored_or_new(self, runtime: pipeline_spec_pb2.RuntimeArtifact) -> metadata_store_pb2.Artifact:
        title = schema_title(runtime.type)
        artifact_id = self._artifact_ids.get(runtime.name)
        if artifact_id is None and runtime.name:
            stored = self.store.get_artifact_by_type_and_name(title, runtime.name) \
                if self._has_type(title) else None
            artifact_id = stored.id if stored is not None else None
        if artifact_id is not None:
            [artifact] = self.store.get_artifacts_by_id([artifact_id])
            return artifact
        type_id = self.store.put_artifact_type(metadata_store_pb2.ArtifactType(name=title))
        artifact = metadata_store_pb2.Artifact(type_id=type_id, uri=runtime.uri, name=runtime.name,
                                               state=metadata_store_pb2.Artifact.LIVE)
        for key, value in json_format.MessageToDict(runtime.metadata).items():
            artifact.custom_properties[key].CopyFrom(to_mlmd_value(value))
        return artifact

    def _has_type(self, title: str) -> bool:
        return any(t.name == title for t in self.store.get_artifact_types())

    # --- queries -----------------------------------------------------------------------
    def find_artifacts(self, filter_text: str) -> list[metadata_store_pb2.Artifact]:
        """Artifacts of this pipeline (any of its runs) matching a Vertex filter, latest first."""
        return metadata_queries.find_artifacts(self.store, filter_text, context_id=self.contexts.pipeline.id)

    def find_by_uri(self, title: str, uri: str) -> list[metadata_store_pb2.Artifact]:
        """LIVE artifacts of type `title` at `uri`, latest first (an importer's reuse)."""
        if not self._has_type(title):
            return []
        type_id = self.store.get_artifact_type(title).id
        found = [a for a in self.store.get_artifacts_by_uri(uri)
                 if a.type_id == type_id and a.state == metadata_store_pb2.Artifact.LIVE]
        return sorted(found, key=lambda a: (a.create_time_since_epoch, a.id), reverse=True)


def runtime_artifact(artifact: metadata_store_pb2.Artifact,
                     type_schema: pipeline_spec_pb2.ArtifactTypeSchema) -> pipeline_spec_pb2.RuntimeArtifact:
    """A stored artifact as a task's ExecutorInput carries it (name, type, uri, metadata)."""
    metadata = {key: from_mlmd_value(value) for key, value in artifact.custom_properties.items()}
    result = pipeline_spec_pb2.RuntimeArtifact(name=artifact.name, uri=artifact.uri)
    result.type.CopyFrom(type_schema)
    result.metadata.update({k: v for k, v in metadata.items() if v is not None})
    return result


def _event(event_type: int, key: str, index: int) -> Event:
    event = Event(type=event_type)
    event.path.steps.add().key = key
    event.path.steps.add().index = index
    return event
