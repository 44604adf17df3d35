"""Answers a compiled resolver task's artifact filter from a local ML-metadata store.

On Vertex AI a resolver task has no container: its executor spec holds one filter per
output, in Vertex ML Metadata's filter language, which the orchestrator runs against the
metadata store. TFX 1.16 compiles its resolvers to conjunctions of these clauses:

    schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1
    schema_title="tfx.Model" AND state=LIVE AND name="<an artifact's resource name>"

(the second after its `{{$.inputs.artifacts['input'].metadata['current_model_id']}}`
placeholder has been substituted). `parse_filter` reads such a conjunction, refusing any
clause it does not understand, and `find_artifacts` answers it, latest first, from the
local store, where an artifact's type name is its schema title and its Vertex metadata
are its custom properties (see kubeflow/local_metadata.py).
"""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Optional, Union

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

# `field = value`, the value quoted ("..." with \" escapes) or a bare token (LIVE, 1, 0.5).
_CLAUSE = re.compile(r'\s*(?P<field>[A-Za-z_][\w.]*)\s*=\s*(?P<value>"(?:[^"\\]|\\.)*"|[^\s"]+)\s*')
_AND = re.compile(r'AND\s', re.ASCII)
_METADATA_FIELD = re.compile(r"metadata\.(?P<key>\w+)\.(?P<kind>number_value|string_value|bool_value)")

Scalar = Union[str, float, bool]


@dataclasses.dataclass(frozen=True)
class Clause:
    """One `field=value` condition. `field` is schema_title, state, name or metadata.<key>.<kind>."""

    field: str
    value: Scalar


def parse_filter(text: str) -> list[Clause]:
    """The clauses of `a=1 AND b="x" AND ...`.

    Raises:
      ValueError: the filter is not such a conjunction, or names a field this answerer
        does not know (an unknown field must not be silently ignored: the answer would be
        wider than the query).
    """
    clauses, position = [], 0
    while True:
        match = _CLAUSE.match(text, position)
        if not match:
            raise ValueError(f"Cannot read the artifact filter {text!r} at position {position}: "
                             f"expected field=value.")
        clauses.append(_clause(match.group("field"), match.group("value"), text))
        position = match.end()
        if position == len(text):
            return clauses
        joiner = _AND.match(text, position)
        if not joiner:
            raise ValueError(f"Cannot read the artifact filter {text!r} at position {position}: "
                             f"only AND-joined field=value clauses are supported.")
        position = joiner.end()


def _clause(field: str, raw: str, text: str) -> Clause:
    quoted = raw.startswith('"')
    value = json.loads(raw) if quoted else raw  # A quoted value is a JSON string literal.
    if field in ("schema_title", "name"):
        if not quoted:
            raise ValueError(f"In the artifact filter {text!r}, {field} needs a quoted value.")
        return Clause(field, value)
    if field == "state":
        if value not in metadata_store_pb2.Artifact.State.keys():
            raise ValueError(f"In the artifact filter {text!r}, state={value} is not an artifact state "
                             f"({', '.join(metadata_store_pb2.Artifact.State.keys())}).")
        return Clause(field, value)
    metadata = _METADATA_FIELD.fullmatch(field)
    if not metadata:
        raise ValueError(f"In the artifact filter {text!r}, the field {field!r} is not supported "
                         f"(schema_title, state, name, metadata.KEY.number_value/string_value/bool_value).")
    kind = metadata.group("kind")
    if kind == "number_value":
        try:
            return Clause(field, float(value))
        except ValueError:
            raise ValueError(f"In the artifact filter {text!r}, {field} needs a number, got {raw}.") from None
    if kind == "bool_value":
        if value not in ("true", "false"):
            raise ValueError(f"In the artifact filter {text!r}, {field} needs true or false, got {raw}.")
        return Clause(field, value == "true")
    return Clause(field, value)


def _metadata_value(artifact: metadata_store_pb2.Artifact, key: str) -> Optional[metadata_store_pb2.Value]:
    if key in artifact.custom_properties:
        return artifact.custom_properties[key]
    if key in artifact.properties:
        return artifact.properties[key]
    return None


def _matches(artifact: metadata_store_pb2.Artifact, clause: Clause) -> bool:
    if clause.field == "name":
        return artifact.name == clause.value
    if clause.field == "state":
        return artifact.state == metadata_store_pb2.Artifact.State.Value(clause.value)
    key, kind = _METADATA_FIELD.fullmatch(clause.field).group("key", "kind")
    value = _metadata_value(artifact, key)
    if value is None:
        return False
    which = value.WhichOneof("value")
    if kind == "number_value":
        # Vertex metadata numbers are JSON numbers; the local store keeps whole ones as ints.
        return which in ("int_value", "double_value") and float(getattr(value, which)) == clause.value
    if kind == "bool_value":
        return which == "bool_value" and value.bool_value == clause.value
    return which == "string_value" and value.string_value == clause.value


def find_artifacts(store: mlmd.MetadataStore, text: str,
                   context_id: Optional[int] = None) -> list[metadata_store_pb2.Artifact]:
    """The artifacts matching the filter `text`, latest (creation time, then id) first.

    Args:
      store: the local ML-metadata store playing Vertex ML Metadata.
      text: the filter, placeholders already substituted.
      context_id: only artifacts attributed to this context (the pipeline's), if given.
    """
    clauses = parse_filter(text)
    titles = {c.value for c in clauses if c.field == "schema_title"}
    if len(titles) > 1:
        return []
    if context_id is not None:
        candidates = store.get_artifacts_by_context(context_id)
        if titles:
            artifact_type = _artifact_type(store, next(iter(titles)))
            if artifact_type is None:
                return []
            candidates = [a for a in candidates if a.type_id == artifact_type.id]
    elif titles:
        candidates = store.get_artifacts_by_type(next(iter(titles)))
    else:
        candidates = store.get_artifacts()
    found = [a for a in candidates if all(_matches(a, c) for c in clauses if c.field != "schema_title")]
    return sorted(found, key=lambda a: (a.create_time_since_epoch, a.id), reverse=True)


def _artifact_type(store: mlmd.MetadataStore, name: str) -> Optional[metadata_store_pb2.ArtifactType]:
    try:
        return store.get_artifact_type(name)
    except mlmd.errors.NotFoundError:
        return None
