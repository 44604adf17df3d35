"""Reads one pipeline's lineage from an ML-metadata store: SQLite (local runs) or MySQL.

MySQL is how Kubeflow Pipelines deployments keep their metadata and how a team shares one
store; MLMD's own ConnectionConfig reaches both, so everything after `connect` is the same.
The executions of a run are found through TFX's contexts: `pipeline` (the pipeline name),
`pipeline_run` (one per run, child of the pipeline) and `node` (`<pipeline>.<node id>`).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional

from components.lineage.snapshot import Artifact, Execution, Run, Snapshot, canonical_type


@dataclasses.dataclass(frozen=True)
class MySQLTarget:
    """Where a MySQL/MariaDB ML-metadata store is: TCP (host, port) or a local socket."""

    database: str
    user: str
    password: str = ""
    host: str = "127.0.0.1"
    port: int = 3306
    socket: Optional[str] = None

    def describe(self) -> str:
        where = self.socket if self.socket else f"{self.host}:{self.port}"
        return f"MySQL database {self.database!r} at {where}"


def sqlite_connection_config(path: str, read_only: bool = True):
    """A ConnectionConfig for an existing SQLite store.

    Raises:
      ValueError: no file at `path` (MLMD would otherwise create an empty store there).
    """
    from ml_metadata.proto import metadata_store_pb2  # Deferred: keeps --help fast.

    if not os.path.isfile(path):
        raise ValueError(f"--metadata_path {path}: no such ML-metadata store. Run `bertpipe run` first, "
                         "or point --metadata_path at its metadata.sqlite (default OUTPUT_DIR/metadata.sqlite).")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = (metadata_store_pb2.SqliteMetadataSourceConfig.READONLY if read_only
                                     else metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    return config


def mysql_connection_config(target: MySQLTarget):
    """MLMD's ConnectionConfig.mysql for `target` (what TFX's mysql_metadata_connection_config
    builds, plus the socket, which it has no argument for)."""
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.mysql.database = target.database
    config.mysql.user = target.user
    config.mysql.password = target.password
    if target.socket:
        config.mysql.socket = target.socket
    else:
        config.mysql.host = target.host
        config.mysql.port = target.port
    return config


def connect(connection_config, description: str):
    """An MLMD MetadataStore; a store that cannot be reached is a ValueError naming it."""
    import ml_metadata as mlmd
    from ml_metadata import errors

    try:
        return mlmd.MetadataStore(connection_config)
    except (errors.StatusError, RuntimeError) as e:
        if connection_config.HasField("mysql"):
            hint = ("is the server running there, and are --metadata_mysql_user/--metadata_mysql_password "
                    "and the database right?")
        else:
            hint = "is it an ML-metadata SQLite file (`bertpipe run` writes OUTPUT_DIR/metadata.sqlite)?"
        raise ValueError(f"cannot open the ML-metadata store ({description}): {_first_line(e)}; {hint}") from e


def plain_value(value) -> Any:
    """An MLMD Value proto as a Python value (struct values as dicts)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "struct_value":
        from google.protobuf import json_format

        return json_format.MessageToDict(value.struct_value)
    if kind == "proto_value":
        return str(value.proto_value)
    return getattr(value, kind)


def _plain_properties(message) -> dict[str, Any]:
    values = {k: plain_value(v) for k, v in message.custom_properties.items()}
    values.update({k: plain_value(v) for k, v in message.properties.items()})
    return values


# How Vertex ML Metadata (and `bertpipe run-spec`, which plays it) names what TFX calls plain
# names: a task's input parameters (the TFX execution properties) in the execution's metadata,
# and an artifact's custom properties as TFX's Kubeflow V2 entrypoint reports them.
_PARAMETER_PREFIX = "input:"
_CUSTOM_PREFIX = "custom:"


def _properties_by_tfx_name(message, vertex_prefix: str) -> dict[str, Any]:
    """A message's properties, each also under its TFX name when stored as `<vertex_prefix>NAME`."""
    values = _plain_properties(message)
    for name in [k for k in values if k.startswith(vertex_prefix)]:
        values.setdefault(name[len(vertex_prefix):], values[name])
    return values


def pipeline_names(store) -> list[str]:
    return sorted(c.name for c in store.get_contexts_by_type("pipeline"))


def read_snapshot(store, pipeline_name: str, source: str) -> Snapshot:
    """Every run, execution and artifact of `pipeline_name` in the store.

    Raises:
      ValueError: the store is empty, or holds other pipelines only (names them).
    """
    from ml_metadata import errors

    try:
        return _read_snapshot(store, pipeline_name, source)
    except errors.StatusError as e:
        raise ValueError(f"cannot read {source}: {_first_line(e)}") from e


def _first_line(error: Exception) -> str:
    """The gist of an MLMD error: its first line, without the SQL it was running."""
    text = str(error).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    return text.split(" query: ")[0].rstrip(" ,:")


def _read_snapshot(store, pipeline_name: str, source: str) -> Snapshot:
    from ml_metadata.proto import metadata_store_pb2

    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        others = pipeline_names(store)
        if not others:
            raise ValueError(f"{source} holds no pipeline runs (an empty store): run the pipeline with it first.")
        raise ValueError(f"{source} holds no runs of pipeline {pipeline_name!r}, only of {others}: "
                         "give --pipeline_name with one of those.")
    run_contexts = [c for c in store.get_children_contexts_by_context(pipeline.id) if c.type == "pipeline_run"]
    prefix = f"{pipeline_name}."
    node_of: dict[int, str] = {}
    for node in store.get_contexts_by_type("node"):
        if node.name.startswith(prefix):
            for execution in store.get_executions_by_context(node.id):
                node_of[execution.id] = node.name[len(prefix):]

    runs, raw_executions = [], {}
    for context in run_contexts:
        members = store.get_executions_by_context(context.id)
        raw_executions.update({e.id: e for e in members})
        runs.append(Run(id=context.name, execution_ids=[str(e.id) for e in members],
                        create_time_ms=context.create_time_since_epoch))
    runs.sort(key=lambda r: (r.create_time_ms, r.id), reverse=True)

    execution_types = {t.id: t.name for t in store.get_execution_types()}
    events = store.get_events_by_execution_ids(list(raw_executions)) if raw_executions else []
    inputs: dict[int, dict[str, list[str]]] = {i: {} for i in raw_executions}
    outputs: dict[int, dict[str, list[str]]] = {i: {} for i in raw_executions}
    input_kinds = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
    output_kinds = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT,
                    metadata_store_pb2.Event.PENDING_OUTPUT)
    for event in events:
        keys = [step.key for step in event.path.steps if step.HasField("key")]
        key = keys[0] if keys else ""
        side = inputs if event.type in input_kinds else outputs if event.type in output_kinds else None
        if side is not None:
            side[event.execution_id].setdefault(key, []).append(str(event.artifact_id))

    executions = {}
    for execution_id, e in raw_executions.items():
        type_name = e.type or execution_types.get(e.type_id, "")
        executions[str(execution_id)] = Execution(
            id=str(execution_id), node_id=node_of.get(execution_id, type_name.rsplit(".", 1)[-1]), type=type_name,
            state=metadata_store_pb2.Execution.State.Name(e.last_known_state),
            properties=_properties_by_tfx_name(e, _PARAMETER_PREFIX),
            inputs=inputs[execution_id], outputs=outputs[execution_id],
            start_ms=e.create_time_since_epoch, end_ms=e.last_update_time_since_epoch)

    artifact_ids = sorted({int(a) for e in executions.values() for side in (e.inputs, e.outputs)
                           for ids in side.values() for a in ids})
    artifact_types = {t.id: t.name for t in store.get_artifact_types()}
    artifacts = {}
    for a in store.get_artifacts_by_id(artifact_ids) if artifact_ids else []:
        artifacts[str(a.id)] = Artifact(
            id=str(a.id), type=canonical_type(a.type or artifact_types.get(a.type_id, "")), uri=a.uri,
            properties=_properties_by_tfx_name(a, _CUSTOM_PREFIX), create_time_ms=a.create_time_since_epoch,
            state=metadata_store_pb2.Artifact.State.Name(a.state))
    return Snapshot(pipeline_name=pipeline_name, source=source, artifacts=artifacts, executions=executions,
                    runs=runs)


def describe_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
