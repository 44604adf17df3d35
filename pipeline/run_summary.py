"""What a finished run produced, read from ML-metadata: the answer `bertpipe run` prints."""
from __future__ import annotations

import dataclasses
from typing import Optional

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from components.evaluator.results import read_baseline_metrics, read_eval_metrics


@dataclasses.dataclass(frozen=True)
class RunSummary:
    run_id: str
    model_uri: str
    evaluation_uri: str
    metrics: dict
    blessed: bool
    pushed_uri: Optional[str]
    metadata_path: str
    # The baseline's metrics on the same eval split (retraining with a blessed model), else None.
    baseline_metrics: Optional[dict] = None

    def render(self) -> str:
        lines = [
            f"Pipeline run {self.run_id} finished.",
            f"  model:            {self.model_uri}/Format-Serving",
            f"  eval metrics:     {self.evaluation_uri}",
            f"  metadata store:   {self.metadata_path}",
            f"  blessed:          {'yes' if self.blessed else 'no'}",
            f"  pushed to:        {self.pushed_uri or '(not pushed: the model was not blessed)'}",
            "  do_eval metrics (Evaluator, eval split):",
        ]
        lines += [f"    {name} = {value:.6f}" for name, value in self.metrics.items()]
        if self.baseline_metrics:
            lines.append("  baseline (the latest blessed model), same eval split:")
            lines += [f"    {name} = {value:.6f}" for name, value in self.baseline_metrics.items()]
        return "\n".join(lines)


def _run_context(store: mlmd.MetadataStore, pipeline_name: str, run_id: str) -> metadata_store_pb2.Context:
    """The pipeline_run context of `run_id`, which must be a run of `pipeline_name`.

    The caller names its own run: the newest run in a shared store may be another
    process's, and summarising that one would report another run's model and metrics.
    """
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        raise ValueError(f"No run of pipeline {pipeline_name!r} in the metadata store.")
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    if run is None:
        raise ValueError(f"Run {run_id!r} of pipeline {pipeline_name!r} is not in the metadata store.")
    # A run id is unique per store only by convention: check it belongs to this pipeline.
    if pipeline.id not in {c.id for c in store.get_parent_contexts_by_context(run.id)}:
        raise ValueError(f"Run {run_id!r} in the metadata store is not a run of pipeline {pipeline_name!r}.")
    return run


def sqlite_readonly(metadata_path: str) -> metadata_store_pb2.ConnectionConfig:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return config


def _event_key(event: metadata_store_pb2.Event) -> str:
    return event.path.steps[0].key if event.path.steps else ""


_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
_INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)


class _RunGraph:
    """The events of one run's executions, and which artifacts the run itself made.

    A run's context also holds artifacts it only consumed: in a retraining run the
    resolver outputs the base model and its blessing into the same context. What the run
    *made* is what one of its executions output first (the producer), never "the newest id".
    """

    def __init__(self, store: mlmd.MetadataStore, run: metadata_store_pb2.Context):
        self.store = store
        self.execution_ids = {e.id for e in store.get_executions_by_context(run.id)}
        self.events = store.get_events_by_execution_ids(list(self.execution_ids)) if self.execution_ids else []
        output_ids = {e.artifact_id for e in self.events if e.type in _OUTPUT_EVENTS}
        producers: dict[int, metadata_store_pb2.Event] = {}
        for event in store.get_events_by_artifact_ids(list(output_ids)) if output_ids else []:
            if event.type not in _OUTPUT_EVENTS:
                continue
            first = producers.get(event.artifact_id)
            if first is None or (event.milliseconds_since_epoch, event.execution_id) < \
                    (first.milliseconds_since_epoch, first.execution_id):
                producers[event.artifact_id] = event
        # artifact id -> the execution of this run that made it
        self.made_by = {a: e.execution_id for a, e in producers.items() if e.execution_id in self.execution_ids}

    def made(self, key: str) -> list[tuple[int, int]]:
        """(execution id, artifact id) of the artifacts this run made under output `key`."""
        return sorted({(e.execution_id, e.artifact_id) for e in self.events
                       if e.type in _OUTPUT_EVENTS and _event_key(e) == key
                       and self.made_by.get(e.artifact_id) == e.execution_id})

    def inputs(self, execution_id: int, key: str) -> list[int]:
        return sorted({e.artifact_id for e in self.events if e.execution_id == execution_id
                       and e.type in _INPUT_EVENTS and _event_key(e) == key})

    def outputs(self, execution_id: int, key: str) -> list[int]:
        return sorted({e.artifact_id for e in self.events if e.execution_id == execution_id
                       and e.type in _OUTPUT_EVENTS and _event_key(e) == key})

    def artifact(self, artifact_id: int) -> metadata_store_pb2.Artifact:
        [artifact] = self.store.get_artifacts_by_id([artifact_id])
        return artifact


def summarize(connection_config: metadata_store_pb2.ConnectionConfig, pipeline_name: str, run_id: str,
              metadata_path: str) -> RunSummary:
    """Reads what run `run_id` produced, following its own executions' events:

        its Pusher's PushedModel -> the Model and ModelBlessing that Pusher read
          -> the ModelEvaluation of the Evaluator that made that blessing.

    So a retraining run reports its new model, not the base model its resolver put in the
    same context, and with two training phases the model that was pushed (the last phase).

    Args:
      connection_config: the ML-metadata store the run wrote to.
      pipeline_name: the run's pipeline.
      run_id: the run's id (its pipeline_run context's name), as the runner set it.
      metadata_path: how to name the store in the summary (a file path, or a MySQL address).

    Raises:
      ValueError: the run is not in the store, or did not get as far as its Pusher, or its
        Pusher read a model or blessing the run did not make.
    """
    store = mlmd.MetadataStore(connection_config)
    run = _run_context(store, pipeline_name, run_id)
    graph = _RunGraph(store, run)
    pushes = graph.made("pushed_model")
    if len(pushes) != 1:
        raise ValueError(f"Run {run.name} in {metadata_path} made {len(pushes)} PushedModel artifacts, "
                         f"expected 1 (the run did not finish; `bertpipe lineage runs` shows its steps).")
    [(pusher_id, pushed_id)] = pushes
    chosen = {}
    for key in ("model", "model_blessing"):
        ids = graph.inputs(pusher_id, key)
        if len(ids) != 1 or ids[0] not in graph.made_by:
            raise ValueError(f"Run {run.name}'s Pusher read {key} {ids}, which the run did not make "
                             f"(metadata store {metadata_path}).")
        chosen[key] = graph.artifact(ids[0])
    blessing = chosen["model_blessing"]
    evaluations = graph.outputs(graph.made_by[blessing.id], "evaluation")
    if len(evaluations) != 1:
        raise ValueError(f"Run {run.name}: the Evaluator that made blessing {blessing.id} output "
                         f"{len(evaluations)} evaluations (metadata store {metadata_path}).")
    evaluation = graph.artifact(evaluations[0])
    pushed = graph.artifact(pushed_id)
    blessed = blessing.custom_properties["blessed"].int_value == 1 if "blessed" in blessing.custom_properties else False
    pushed_flag = pushed.custom_properties["pushed"].int_value == 1 if "pushed" in pushed.custom_properties else False
    pushed_uri = (pushed.custom_properties["pushed_destination"].string_value
                  if pushed_flag and "pushed_destination" in pushed.custom_properties else None)
    return RunSummary(run_id=run.name, model_uri=chosen["model"].uri, evaluation_uri=evaluation.uri,
                      metrics=read_eval_metrics(evaluation.uri), blessed=blessed,
                      pushed_uri=pushed_uri, metadata_path=metadata_path,
                      baseline_metrics=read_baseline_metrics(evaluation.uri))
