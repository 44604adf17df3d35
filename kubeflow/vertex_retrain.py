"""`bertpipe submit --if_new_span`: submit a retraining spec only when its data has a span
that no blessed model on Vertex AI has been trained on.

The same decision as `bertpipe retrain` (pipeline/retrain.py's decide_from), from other
sources: the latest blessed model is read from the pipeline's jobs in Vertex ML Metadata
(components/lineage/vertex.py), as the spec's own latest-blessed-model resolver will find
it (the newest LIVE ModelBlessing with blessed = 1, and the Model its Evaluator judged);
its `span` custom property is the newest span it was trained on. The data's newest span
comes from a Cloud Storage listing of the pattern the spec reads: PretrainingDataGen's
`corpus_pattern`, or ImportExampleGen's `input_base` and split pattern for records.
No jobs of the pipeline yet (the first run ever) means no blessed model: it runs.
"""
from __future__ import annotations

import json
from typing import Callable, Optional

from components.lineage import vertex
from components.lineage.snapshot import Snapshot
from components.pretraining_data import spans
from kubeflow.gcs_listing import gcs_glob
from pipeline import retrain

# pipeline.pipeline.LATEST_BLESSED_MODEL_RESOLVER, not imported: that module imports TFX.
LATEST_BLESSED_MODEL_RESOLVER = "latest_blessed_model_resolver"


def _constant(task: dict, name: str) -> Optional[str]:
    value = task.get("inputs", {}).get("parameters", {}).get(name, {}).get("runtimeValue", {}).get("constant")
    return value if isinstance(value, str) else None


def data_pattern(spec: dict, spec_path: str) -> str:
    """The data pattern the compiled job reads: the corpus (with PretrainingDataGen), else
    ImportExampleGen's `input_base/<train split pattern>` (records given with --examples).

    Raises:
      ValueError: the spec is not a retraining spec, or names no data pattern.
    """
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    if not any(name.startswith(LATEST_BLESSED_MODEL_RESOLVER) for name in tasks):
        raise ValueError(f"{spec_path} is not a retraining spec (no {LATEST_BLESSED_MODEL_RESOLVER} task): "
                         "compile it with `bertpipe compile --retrain`.")
    corpus = _constant(tasks.get("PretrainingDataGen", {}), "corpus_pattern")
    if corpus:
        return corpus
    example_gen = tasks.get("ImportExampleGen", {})
    input_base, input_config = _constant(example_gen, "input_base"), _constant(example_gen, "input_config")
    if input_base and input_config:
        splits = json.loads(input_config).get("splits", [])
        if splits:
            return f"{input_base.rstrip('/')}/{splits[0]['pattern']}"
    raise ValueError(f"{spec_path} names no data pattern (no PretrainingDataGen corpus_pattern, no ImportExampleGen "
                     "input_base); recompile it with `bertpipe compile --retrain`.")


def newest_span(pattern: str, glob: Callable[[str], list[str]]) -> int:
    """The pattern's newest span, listed with `glob`; 0 for a pattern without {SPAN} (or a
    comma-separated list of files), as ImportExampleGen numbers it."""
    if not spans.has_span(pattern):
        return 0
    return spans.latest_span(pattern, glob).number


def latest_blessed_model(snapshot: Snapshot) -> Optional[retrain.BlessedModel]:
    """The model the retraining spec's resolver will pick: the newest LIVE blessing with
    blessed = 1, and the model its Evaluator read (None if no model was ever blessed)."""
    blessings = [b for b in snapshot.artifacts_of_type("ModelBlessing")
                 if b.prop("blessed") == 1 and b.state == "LIVE"]
    for blessing in sorted(blessings, key=lambda b: b.create_time_ms, reverse=True):
        evaluator = snapshot.producer(blessing.id)
        models = evaluator.inputs.get("model", []) if evaluator is not None else []
        if models and models[0] in snapshot.artifacts:
            model = snapshot.artifacts[models[0]]
            span = model.prop("span")
            return retrain.BlessedModel(id=model.id.rsplit("/", 1)[-1], uri=model.uri,
                                        span=int(span) if span is not None else None)
    return None


def decide(spec: dict, spec_path: str, project: str, region: str, force: bool = False,
           glob: Optional[Callable[[str], list[str]]] = None, credentials=None) -> retrain.Decision:
    """Whether to submit the retraining spec (see the module docstring).

    Args:
      glob: lists gs:// paths (default: Cloud Storage with Application Default Credentials).
      credentials: for Vertex AI (None: Application Default Credentials).

    Raises:
      ValueError: not a retraining spec, a pattern that matches nothing, no credentials, an
        API error (one line each).
    """
    pattern = data_pattern(spec, spec_path)
    newest = newest_span(pattern, glob or gcs_glob(project))
    pipeline_name = spec["pipelineSpec"]["pipelineInfo"]["name"]
    snapshot = vertex.read_snapshot(project, region, pipeline_name, credentials=credentials, missing_ok=True)
    return retrain.decide_from(newest, latest_blessed_model(snapshot), force)
