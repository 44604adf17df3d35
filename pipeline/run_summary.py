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


def _latest_run_context(store: mlmd.MetadataStore, pipeline_name: str) -> metadata_store_pb2.Context:
    """The newest pipeline_run context among the runs of `pipeline_name`."""
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        raise ValueError(f"No run of pipeline {pipeline_name!r} in the metadata store.")
    # Run contexts are children of the pipeline's context.
    runs = [c for c in store.get_children_contexts_by_context(pipeline.id) if c.type == "pipeline_run"]
    if not runs:
        raise ValueError(f"No run of pipeline {pipeline_name!r} in the metadata store.")
    return max(runs, key=lambda c: (c.create_time_since_epoch, c.id))


def summarize(metadata_path: str, pipeline_name: str) -> RunSummary:
    """Reads the latest run's Model, ModelEvaluation, ModelBlessing and PushedModel."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = mlmd.MetadataStore(config)
    run = _latest_run_context(store, pipeline_name)
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
