"""The backend-independent picture of a pipeline's metadata that every lineage query reads.

ML-metadata (SQLite, MySQL) and Vertex AI pipeline jobs are both read into these
dataclasses, so the queries run the same over either. A snapshot is the whole of one
pipeline's metadata in memory: pipeline stores hold hundreds of artifacts, not millions.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

# ML-metadata type names differ by orchestrator: LocalDagRunner records TFX's names
# (`Model`, `Examples`), Vertex AI and compiled specs use schema titles (`tfx.Model`);
# the project's own types are `components.*` under both.
_TFX_PREFIX = "tfx."


def canonical_type(type_name: str) -> str:
    """`tfx.Model` -> `Model`; `Model` and `components.Vocabulary` unchanged."""
    return type_name[len(_TFX_PREFIX):] if type_name.startswith(_TFX_PREFIX) else type_name


# Executions' node ids (component ids) in pipeline order: how the graph lays them out
# left to right, and how a run's steps are listed.
PIPELINE_ORDER = ("VocabularyImporter", "VocabularyGen", "PretrainingDataGen", "ImportExampleGen",
                  "latest_blessed_model_resolver", "BertTrainer", "Evaluator", "Pusher")


def node_rank(node_id: str) -> int:
    for rank, name in enumerate(PIPELINE_ORDER):
        if node_id == name or node_id.startswith(name):
            return rank
    return len(PIPELINE_ORDER)


@dataclasses.dataclass
class Artifact:
    id: str
    type: str  # canonical_type()
    uri: str
    properties: dict[str, Any]  # properties and custom properties, as plain values
    create_time_ms: int = 0
    state: str = "LIVE"

    def prop(self, name: str, default: Any = None) -> Any:
        return self.properties.get(name, default)

    def json_prop(self, name: str, default: Any = None) -> Any:
        """A property holding JSON text, decoded; `default` when absent or not JSON."""
        return _decoded(self.properties.get(name), default)


def _decoded(value: Any, default: Any) -> Any:
    """JSON text decoded; `default` for anything else (absent, empty, not JSON)."""
    if not isinstance(value, str) or not value:
        return default
    try:
        return json.loads(value)
    except ValueError:
        return default


@dataclasses.dataclass
class Execution:
    id: str
    node_id: str  # the component id in the pipeline, e.g. "BertTrainer"
    type: str
    state: str  # COMPLETE | CACHED | FAILED | RUNNING | NEW | CANCELED | UNKNOWN
    properties: dict[str, Any]  # execution (exec) properties, as plain values
    inputs: dict[str, list[str]]  # input key -> artifact ids
    outputs: dict[str, list[str]]  # output key -> artifact ids
    start_ms: int = 0
    end_ms: int = 0

    def json_prop(self, name: str, default: Any = None) -> Any:
        """A property holding JSON (text, or already decoded, as Vertex's struct metadata is)."""
        value = self.properties.get(name)
        return value if isinstance(value, (dict, list)) else _decoded(value, default)


@dataclasses.dataclass
class Run:
    id: str
    execution_ids: list[str]
    create_time_ms: int = 0


@dataclasses.dataclass
class Snapshot:
    """One pipeline's artifacts, executions and runs; `source` says where they were read."""

    pipeline_name: str
    source: str
    artifacts: dict[str, Artifact]
    executions: dict[str, Execution]
    runs: list[Run]  # newest first

    def _index(self) -> tuple[dict[str, list[Execution]], dict[str, list[Execution]]]:
        """artifact id -> executions that output / input it, oldest first (built once)."""
        if getattr(self, "_by_artifact", None) is None:
            outputs: dict[str, list[Execution]] = {}
            inputs: dict[str, list[Execution]] = {}
            for execution in sorted(self.executions.values(), key=lambda e: (e.start_ms, _as_int(e.id))):
                for side, index in ((execution.outputs, outputs), (execution.inputs, inputs)):
                    for artifact_id in {i for ids in side.values() for i in ids}:
                        index.setdefault(artifact_id, []).append(execution)
            self._by_artifact = (outputs, inputs)
        return self._by_artifact

    def producer(self, artifact_id: str) -> Optional[Execution]:
        """The execution that output the artifact (the first, if a cached one re-published it)."""
        found = self._index()[0].get(artifact_id)
        return found[0] if found else None

    def consumers(self, artifact_id: str) -> list[Execution]:
        return list(self._index()[1].get(artifact_id, []))

    def artifacts_of_type(self, type_name: str) -> list[Artifact]:
        """Newest first."""
        wanted = canonical_type(type_name)
        return sorted((a for a in self.artifacts.values() if a.type == wanted),
                      key=lambda a: (a.create_time_ms, _as_int(a.id)), reverse=True)

    def run_of(self, execution_id: str) -> Optional[Run]:
        for run in self.runs:
            if execution_id in run.execution_ids:
                return run
        return None

    _by_artifact = None  # the producer/consumer index; not a dataclass field


def _as_int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0
