"""`bertpipe retrain`: train again only when there is data no blessed model has seen.

The decision reads ML-metadata: the latest blessed model (what the pipeline's
LatestBlessedModelStrategy resolver will also find) records `span`, the newest span of
the data it was trained on. If the data pattern (`--corpus` or `--examples` with
`{SPAN}`) has a newer span, the pipeline runs in retraining mode (warm start from that
model, compared with it as the baseline); otherwise nothing runs. A pattern without
`{SPAN}` is one span (0) that never grows: once a model trained on it is blessed there is
nothing new (`--force` runs anyway).

Exit codes (see EXIT_CODES; also in `bertpipe retrain --help` and the README):
  0  the candidate was blessed and pushed, or there was nothing new to train on
  1  the pipeline failed
  2  bad input (a flag, a pattern that matches nothing, a refused warm start, ...)
  3  the candidate was trained and evaluated but not blessed: nothing was pushed
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional, Union

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from components.pretraining_data import spans
from pipeline.config import PipelineConfig

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_BLESSED = 3
EXIT_CODES = {
    EXIT_OK: "pushed, or nothing new to train on",
    EXIT_FAILED: "the pipeline failed",
    EXIT_BAD_INPUT: "bad input (flags, data pattern, refused warm start)",
    EXIT_NOT_BLESSED: "trained but not blessed (nothing pushed)",
}


@dataclasses.dataclass(frozen=True)
class BlessedModel:
    id: Union[int, str]  # an MLMD id, or a Vertex ML Metadata artifact's resource name
    uri: str
    span: Optional[int]


@dataclasses.dataclass(frozen=True)
class Decision:
    run: bool
    reason: str
    newest_span: Optional[int]
    blessed: Optional[BlessedModel]


def _open_store(metadata_path: str) -> mlmd.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def latest_blessed_model(metadata_path: str, pipeline_name: str) -> Optional[BlessedModel]:
    """The newest Model of `pipeline_name` with a ModelBlessing `blessed` = 1, as TFX's
    LatestBlessedModelStrategy picks it (largest model id among the blessed ones); None if
    there is none (or no store yet)."""
    if not os.path.exists(metadata_path):
        return None
    store = _open_store(metadata_path)
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        return None
    artifacts = store.get_artifacts_by_context(pipeline.id)
    types = {t.id: t.name for t in store.get_artifact_types()}
    blessed_ids = {a.custom_properties["current_model_id"].int_value for a in artifacts
                   if types.get(a.type_id) == "ModelBlessing" and "blessed" in a.custom_properties
                   and a.custom_properties["blessed"].int_value == 1 and "current_model_id" in a.custom_properties}
    models = [a for a in artifacts if types.get(a.type_id) == "Model" and a.id in blessed_ids
              and a.state == metadata_store_pb2.Artifact.LIVE]
    if not models:
        return None
    model = max(models, key=lambda a: a.id)
    span = model.custom_properties["span"].int_value if "span" in model.custom_properties else None
    return BlessedModel(id=model.id, uri=model.uri, span=span)


def newest_span(config: PipelineConfig) -> int:
    """The newest span of the data pattern; 0 for a pattern without {SPAN} (as ImportExampleGen).

    Raises:
      ValueError: a {SPAN} pattern that matches nothing (names the pattern).
    """
    pattern = config.examples_dir or config.corpus_pattern
    return spans.latest_span(pattern).number if spans.has_span(pattern) else 0


def decide(config: PipelineConfig, metadata_path: str, force: bool = False) -> Decision:
    """Whether to run: a span newer than the latest blessed model's, no blessed model yet, or force."""
    return decide_from(newest_span(config), latest_blessed_model(metadata_path, config.pipeline_name), force)


def decide_from(newest: int, blessed: Optional[BlessedModel], force: bool = False) -> Decision:
    """The decision from the data's newest span and the latest blessed model (None: none yet),
    wherever they were read (a local store here, Vertex AI in kubeflow/vertex_retrain.py)."""
    if blessed is None:
        return Decision(True, f"no blessed model yet; training on span {newest}", newest, None)
    if blessed.span is None or newest > blessed.span:
        seen = "an unknown span" if blessed.span is None else f"span {blessed.span}"
        return Decision(True, f"span {newest} is newer than {seen} of the blessed model {blessed.id}",
                        newest, blessed)
    if force:
        return Decision(True, f"--force: retraining on span {newest} although the blessed model "
                              f"{blessed.id} has seen it", newest, blessed)
    return Decision(False, f"nothing new: the newest span {newest} is not newer than span {blessed.span} "
                           f"of the blessed model {blessed.id} ({blessed.uri})", newest, blessed)


def _metrics_text(metrics: Optional[dict]) -> str:
    if not metrics:
        return "none"
    return (f"masked_lm_accuracy={metrics['masked_lm_accuracy']:.4f} "
            f"next_sentence_accuracy={metrics['next_sentence_accuracy']:.4f}")


def result_line(summary, decision: Decision) -> str:
    """The one line a CI log reader wants: candidate vs baseline, blessed or not, where pushed."""
    baseline = (f"baseline model {decision.blessed.id} (span {decision.blessed.span}) "
                f"{_metrics_text(summary.baseline_metrics)}" if decision.blessed else "baseline none (first model)")
    return (f"retrain: span {decision.newest_span}: candidate {_metrics_text(summary.metrics)}; {baseline}; "
            f"blessed: {'yes' if summary.blessed else 'no'}; "
            f"pushed to: {summary.pushed_uri or 'nothing pushed'}")


def exit_code(summary) -> int:
    if summary.blessed and summary.pushed_uri:
        return EXIT_OK
    return EXIT_NOT_BLESSED
