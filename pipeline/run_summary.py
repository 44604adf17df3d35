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


def summarize(connection_config: metadata_store_pb2.ConnectionConfig, pipeline_name: str, run_id: str,
              metadata_path: str) -> RunSummary:
    """Reads run `run_id`'s Model, ModelEvaluation, ModelBlessing and PushedModel.

    Args:
      connection_config: the ML-metadata store the run wrote to.
      pipeline_name: the run's pipeline.
      run_id: the run's id (its pipeline_run context's name), as the runner set it.
      metadata_path: how to name the store in the summary (a file path, or a MySQL address).
    """
    store = mlmd.MetadataStore(connection_config)
    run = _run_context(store, pipeline_name, run_id)
    types = {t.id: t.name for t in store.get_artifact_types()}
    latest: dict[str, metadata_store_pb2.Artifact] = {}
    for artifact in store.get_artifacts_by_context(run.id):
        name = types.get(artifact.type_id)
        if name not in latest or artifact.id > latest[name].id:
            latest[name] = artifact
    missing = [t for t in ("Model", "ModelEvaluation", "ModelBlessing", "PushedModel") if t not in latest]
    if missing:
        raise ValueError(f"Run {run.name} has no {missing} artifact(s) in {metadata_path}.")
    blessing = latest["ModelBlessing"]
    pushed = latest["PushedModel"]
    blessed = blessing.custom_properties["blessed"].int_value == 1 if "blessed" in blessing.custom_properties else False
    pushed_flag = pushed.custom_properties["pushed"].int_value == 1 if "pushed" in pushed.custom_properties else False
    pushed_uri = (pushed.custom_properties["pushed_destination"].string_value
                  if pushed_flag and "pushed_destination" in pushed.custom_properties else None)
    return RunSummary(run_id=run.name, model_uri=latest["Model"].uri, evaluation_uri=latest["ModelEvaluation"].uri,
                      metrics=read_eval_metrics(latest["ModelEvaluation"].uri), blessed=blessed,
                      pushed_uri=pushed_uri, metadata_path=metadata_path,
                      baseline_metrics=read_baseline_metrics(latest["ModelEvaluation"].uri))
