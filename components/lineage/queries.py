"""The lineage questions, answered from a Snapshot as plain dicts (the `--json` output).

    runs(snapshot)              the pipeline runs, newest first
    model_lineage(snapshot, s)  what made a model (upstream) and what became of it (downstream)
    uses(snapshot, s)           everything made from an artifact
    diff(snapshot, a, b)        what differs between two models' lineage

Keys are stable (tests/testdata/lineage_keys.json pins them); a value that was not
recorded is None, never a missing key. Inputs are found by TFX's standard input keys
(`examples`, `vocabulary`, `base_model` on the Trainer; `model`, `baseline_model` on the
Evaluator; `model`, `model_blessing` on the Pusher), so a resolver or a warm start that
feeds them shows up without anything here knowing how the pipeline was built.

ImportExampleGen reads a directory, not an artifact, so no ML-metadata event links
PretrainingRecords to the Examples made from them; the link is made here, by the
records' `records_dir` property equal to ImportExampleGen's `input_base`, in the same run.
"""
from __future__ import annotations

import datetime
import json
from typing import Any, Callable, Optional

from components.lineage.snapshot import Artifact, Execution, Snapshot

MetricsReader = Callable[[str], dict]

MODEL_SPECS_HELP = "latest | latest-blessed | pushed | ARTIFACT_ID | URI"
METRIC_NAMES = ("masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy", "next_sentence_loss")
RECORDS_LINK_KEY = "records_dir"  # the key of the implicit PretrainingRecords -> ImportExampleGen edge


def iso_time(ms: int) -> Optional[str]:
    if not ms:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_metrics_reader(evaluation_uri: str) -> dict:
    from components.evaluator.results import read_eval_metrics  # Light: no TensorFlow, no TFMA for local files.

    return read_eval_metrics(evaluation_uri)


class _Metrics:
    """Reads each evaluation's metrics once; an unreadable one gives None (and the reason)."""

    def __init__(self, reader: Optional[MetricsReader]):
        self._reader = reader or default_metrics_reader
        self._cache: dict[str, tuple[Optional[dict], Optional[str]]] = {}

    def __call__(self, uri: str) -> tuple[Optional[dict], Optional[str]]:
        if uri not in self._cache:
            try:
                self._cache[uri] = ({k: float(v) for k, v in self._reader(uri).items()}, None)
            except Exception as e:  # pylint: disable=broad-except  # A missing or foreign file is data, not a crash.
                self._cache[uri] = (None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        return self._cache[uri]


# ----------------------------------------------------------------------------- graph walking

def _first_output(snapshot: Snapshot, execution: Execution, key: str) -> Optional[Artifact]:
    ids = execution.outputs.get(key, [])
    return snapshot.artifacts.get(ids[0]) if ids else None


def _made_by(snapshot: Snapshot, execution: Execution, key: str) -> Optional[Artifact]:
    """The output under `key` if this execution made it: a resolver (e.g. the latest blessed
    model, fed to a warm start) re-outputs an older artifact, which is not this run's."""
    artifact = _first_output(snapshot, execution, key)
    if artifact is None:
        return None
    producer = snapshot.producer(artifact.id)
    return artifact if producer is not None and producer.id == execution.id else None


def _inputs(snapshot: Snapshot, execution: Execution, key: str) -> list[Artifact]:
    return [snapshot.artifacts[i] for i in execution.inputs.get(key, []) if i in snapshot.artifacts]


def records_for_examples(snapshot: Snapshot, examples_producer: Execution) -> list[Artifact]:
    """PretrainingRecords whose records_dir the ImportExampleGen execution read (same run)."""
    input_base = examples_producer.properties.get("input_base")
    run = snapshot.run_of(examples_producer.id)
    found = []
    for records in snapshot.artifacts_of_type("components.PretrainingRecords"):
        producer = snapshot.producer(records.id)
        if records.prop("records_dir") == input_base and producer is not None and run is not None \
                and producer.id in run.execution_ids:
            found.append(records)
    return found


def examples_from_records(snapshot: Snapshot, records: Artifact) -> list[tuple[Execution, Artifact]]:
    """(ImportExampleGen execution, Examples) made from the records' directory in the same run."""
    producer = snapshot.producer(records.id)
    run = snapshot.run_of(producer.id) if producer else None
    found = []
    for execution in snapshot.executions.values():
        if run is None or execution.id not in run.execution_ids:
            continue
        if execution.properties.get("input_base") == records.prop("records_dir") and "examples" in execution.outputs:
            found += [(execution, snapshot.artifacts[i]) for i in execution.outputs["examples"]
                      if i in snapshot.artifacts]
    return found


def _is_blessed(blessing: Optional[Artifact]) -> Optional[bool]:
    if blessing is None:
        return None
    return blessing.prop("blessed") == 1


def _evaluations_of(snapshot: Snapshot, model: Artifact) -> list[Execution]:
    return [e for e in snapshot.consumers(model.id) if model.id in e.inputs.get("model", [])
            and ("evaluation" in e.outputs or "blessing" in e.outputs)]


def _pushes_of(snapshot: Snapshot, model: Artifact) -> list[Execution]:
    return [e for e in snapshot.consumers(model.id) if model.id in e.inputs.get("model", [])
            and "pushed_model" in e.outputs]


def _pushed_destination(pushed: Optional[Artifact]) -> Optional[str]:
    if pushed is None or pushed.prop("pushed") != 1:
        return None
    return pushed.prop("pushed_destination")


# ----------------------------------------------------------------------------- runs

def _run_status(executions: list[Execution]) -> str:
    states = {e.state for e in executions}
    if "FAILED" in states:
        return "failed"
    if any(e.node_id.startswith("Pusher") and e.state in ("COMPLETE", "CACHED") for e in executions):
        return "complete"
    if states & {"RUNNING", "NEW"}:
        return "running or interrupted"
    return "incomplete"


def run_code_version(executions: list[Execution]) -> Optional[dict]:
    """The code version a run recorded: the Trainer's custom_config, else a custom component's
    `code_version` execution property (stock components record none; they ran in the same run)."""
    for execution in executions:
        value = execution.json_prop("custom_config", {})
        if isinstance(value, dict) and value.get("code_version"):
            return value["code_version"]
    for execution in executions:
        value = execution.json_prop("code_version")
        if value:
            return value
    return None


def runs(snapshot: Snapshot, metrics_reader: Optional[MetricsReader] = None) -> list[dict]:
    """The pipeline's runs, newest first; each with its spans, model, metrics, blessing and push."""
    metrics = _Metrics(metrics_reader)
    out = []
    for run in snapshot.runs:
        executions = sorted((snapshot.executions[i] for i in run.execution_ids if i in snapshot.executions),
                            key=lambda e: (e.start_ms, int(e.id) if e.id.isdigit() else 0))
        model = evaluation = blessing = pushed = None
        spans: set[int] = set()
        for execution in executions:
            examples = _made_by(snapshot, execution, "examples")
            if examples is not None and examples.prop("span") is not None:
                spans.add(int(examples.prop("span")))
            model = _made_by(snapshot, execution, "model") or model
            evaluation = _made_by(snapshot, execution, "evaluation") or evaluation
            blessing = _made_by(snapshot, execution, "blessing") or blessing
            pushed = _made_by(snapshot, execution, "pushed_model") or pushed
        values, error = metrics(evaluation.uri) if evaluation is not None else (None, None)
        out.append({
            "run_id": run.id,
            "start": iso_time(min((e.start_ms for e in executions), default=run.create_time_ms)),
            "end": iso_time(max((e.end_ms for e in executions), default=0)),
            "status": _run_status(executions),
            "steps": [{"node": e.node_id, "state": e.state} for e in executions],
            "spans": sorted(spans),
            "code_version": run_code_version(executions),
            # A two-phase run's model is the last one it made: phase 2's (phase 1's is its base).
            "model": None if model is None else {**_artifact_ref(model), "phase": model_phase(snapshot, model)},
            "metrics": values,
            "metrics_error": error,
            "blessed": _is_blessed(blessing),
            "pushed_to": _pushed_destination(pushed),
        })
    return out


# ----------------------------------------------------------------------------- model

def _artifact_ref(artifact: Optional[Artifact]) -> Optional[dict]:
    if artifact is None:
        return None
    return {"id": artifact.id, "type": artifact.type, "uri": artifact.uri}


def model_phase(snapshot: Snapshot, model: Artifact) -> Optional[int]:
    """1 or 2: the two-phase pretraining phase (pipeline/phases.py) whose Trainer made `model`,
    as its custom_config records it; None for a one-phase run's model (or no Trainer known)."""
    trainer = snapshot.producer(model.id)
    custom_config = trainer.json_prop("custom_config", {}) if trainer else {}
    phase = custom_config.get("phase") if isinstance(custom_config, dict) else None
    return int(phase) if phase is not None else None


def find_artifact(snapshot: Snapshot, spec: str) -> Artifact:
    """An artifact by id (MLMD's number, or a Vertex resource name or its last part) or by URI.

    Raises:
      ValueError: nothing matches.
    """
    spec = spec.strip()
    if spec in snapshot.artifacts:
        return snapshot.artifacts[spec]
    for artifact in snapshot.artifacts.values():
        if artifact.id.rsplit("/", 1)[-1] == spec:
            return artifact
    wanted = spec.rstrip("/")
    by_uri = [a for a in snapshot.artifacts.values() if a.uri.rstrip("/") == wanted]
    if by_uri:
        return max(by_uri, key=lambda a: (a.create_time_ms, a.id))
    raise ValueError(f"no artifact with id or URI {spec!r} in {snapshot.source} (pipeline "
                     f"{snapshot.pipeline_name!r}); `bertpipe lineage runs` lists the runs and their models.")


def find_model(snapshot: Snapshot, spec: str) -> Artifact:
    """The Model named by `spec`: latest, latest-blessed, pushed, an artifact id, or a URI
    (the model's, its Format-Serving directory, or a push destination).

    Raises:
      ValueError: no such model (says which specs exist).
    """
    models = snapshot.artifacts_of_type("Model")
    if not models:
        raise ValueError(f"{snapshot.source} holds no Model of pipeline {snapshot.pipeline_name!r} "
                         "(no run got as far as the Trainer); `bertpipe lineage runs` shows what the runs did.")
    if spec == "latest":
        return models[0]
    if spec == "latest-blessed":
        for model in models:
            if any(_is_blessed(_first_output(snapshot, e, "blessing")) for e in _evaluations_of(snapshot, model)):
                return model
        raise ValueError(f"no blessed model in {snapshot.source}: no evaluation passed its thresholds.")
    if spec == "pushed":
        for pushed in snapshot.artifacts_of_type("PushedModel"):
            producer = snapshot.producer(pushed.id)
            if pushed.prop("pushed") == 1 and producer is not None and producer.inputs.get("model"):
                return snapshot.artifacts[producer.inputs["model"][0]]
        raise ValueError(f"no pushed model in {snapshot.source}: no run's Pusher published a model.")
    stripped = spec.rstrip("/")
    if stripped.endswith("/Format-Serving"):
        stripped = stripped[:-len("/Format-Serving")]
    for pushed in snapshot.artifacts_of_type("PushedModel"):
        destination = (pushed.prop("pushed_destination") or "").rstrip("/")
        producer = snapshot.producer(pushed.id)
        if destination and destination == stripped and producer is not None and producer.inputs.get("model"):
            return snapshot.artifacts[producer.inputs["model"][0]]
    artifact = find_artifact(snapshot, stripped)
    if artifact.type != "Model":
        raise ValueError(f"artifact {spec!r} is a {artifact.type}, not a Model; give a model "
                         f"({MODEL_SPECS_HELP}), or use `bertpipe lineage uses {spec}`.")
    return artifact


def _thresholds(eval_config: Any) -> dict:
    """{metric name: {"lower_bound"?, "upper_bound"?, "change"?}} from the Evaluator's eval_config."""
    if not isinstance(eval_config, dict):
        return {}
    found = {}
    for spec in eval_config.get("metrics_specs", []):
        for metric in spec.get("metrics", []):
            threshold = metric.get("threshold")
            if not threshold:
                continue
            try:
                name = json.loads(metric.get("config") or "{}").get("name") or metric.get("class_name")
            except ValueError:
                name = metric.get("class_name")
            entry = {}
            value = threshold.get("value_threshold") or {}
            for bound in ("lower_bound", "upper_bound"):
                if bound in value:
                    entry[bound] = value[bound] if not isinstance(value[bound], dict) else value[bound].get("value")
            if threshold.get("change_threshold"):
                entry["change"] = threshold["change_threshold"]
            found[name] = entry
    return found


def _vocabulary_info(snapshot: Snapshot, vocabulary: Optional[Artifact]) -> Optional[dict]:
    if vocabulary is None:
        return None
    producer = snapshot.producer(vocabulary.id)
    return {
        "id": vocabulary.id, "uri": vocabulary.uri,
        "made_by": producer.node_id if producer else None,
        "vocab_size": vocabulary.prop("vocab_size"),
        "do_lower_case": vocabulary.prop("do_lower_case"),
        "sha256": vocabulary.prop("sha256"),
        "corpus_files": vocabulary.json_prop("corpus_files"),
    }


def _records_info(records: Artifact) -> dict:
    return {"id": records.id, "uri": records.uri, "records_dir": records.prop("records_dir"),
            "num_train_instances": records.prop("num_train_instances"),
            "num_eval_instances": records.prop("num_eval_instances"),
            "options": records.json_prop("options"), "stats": records.json_prop("stats"),
            "corpus_files": records.json_prop("corpus_files")}


def _examples_info(snapshot: Snapshot, examples: Artifact) -> dict:
    producer = snapshot.producer(examples.id)
    properties = producer.properties if producer else {}
    input_config = producer.json_prop("input_config", {}) if producer else {}
    records = records_for_examples(snapshot, producer) if producer else []
    split_counts = None
    if records:
        split_counts = {"train": records[0].prop("num_train_instances"), "eval": records[0].prop("num_eval_instances")}
    return {
        "id": examples.id, "uri": examples.uri,
        "input_base": properties.get("input_base"),
        "input_patterns": {s.get("name"): s.get("pattern") for s in input_config.get("splits", [])} or None,
        "span": examples.prop("span"), "version": examples.prop("version"),
        "split_names": examples.json_prop("split_names"),
        "split_counts": split_counts,
        "records": [_records_info(r) for r in records],
    }


def model_lineage(snapshot: Snapshot, spec: str, metrics_reader: Optional[MetricsReader] = None,
                  model: Optional[Artifact] = None) -> dict:
    """Upstream (data, vocabulary, corpus, trainer config, base model, code version) and
    downstream (evaluations, blessing, pushes) of the model named by `spec`."""
    metrics = _Metrics(metrics_reader)
    model = model or find_model(snapshot, spec)
    trainer = snapshot.producer(model.id)
    run = snapshot.run_of(trainer.id) if trainer else None
    custom_config = trainer.json_prop("custom_config", {}) if trainer else {}
    examples = _inputs(snapshot, trainer, "examples") if trainer else []
    vocabularies = _inputs(snapshot, trainer, "vocabulary") if trainer else []
    base_models = _inputs(snapshot, trainer, "base_model") if trainer else []
    examples_info = [_examples_info(snapshot, e) for e in examples]
    vocabulary = _vocabulary_info(snapshot, vocabularies[0] if vocabularies else None)
    corpus = None
    for info in examples_info:
        for records in info["records"]:
            corpus = corpus or records["corpus_files"]
    corpus = corpus or (vocabulary or {}).get("corpus_files")

    evaluations = []
    for execution in _evaluations_of(snapshot, model):
        evaluation = _first_output(snapshot, execution, "evaluation")
        blessing = _first_output(snapshot, execution, "blessing")
        values, error = metrics(evaluation.uri) if evaluation is not None else (None, None)
        baselines = _inputs(snapshot, execution, "baseline_model")
        evaluations.append({
            "execution_id": execution.id, "state": execution.state,
            "evaluation": _artifact_ref(evaluation), "metrics": values, "metrics_error": error,
            "baseline_model": _artifact_ref(baselines[0]) if baselines else None,
            "thresholds": _thresholds(execution.json_prop("eval_config")),
            "blessed": _is_blessed(blessing), "blessing": _artifact_ref(blessing),
        })
    pushes = []
    for execution in _pushes_of(snapshot, model):
        pushed = _first_output(snapshot, execution, "pushed_model")
        pushes.append({"execution_id": execution.id, "state": execution.state,
                       "pushed": bool(pushed is not None and pushed.prop("pushed") == 1),
                       "destination": _pushed_destination(pushed),
                       # Vertex AI Model Registry version (projects/P/locations/R/models/NAME@V), if registered.
                       "registry_model": pushed.prop("registry_model") if pushed is not None else None})

    train_args = trainer.json_prop("train_args", {}) if trainer else {}
    eval_args = trainer.json_prop("eval_args", {}) if trainer else {}
    return {
        "model": {"id": model.id, "uri": model.uri, "created": iso_time(model.create_time_ms),
                  "run_id": run.id if run else None},
        "trainer": None if trainer is None else {
            "execution_id": trainer.id, "state": trainer.state,
            "phase": model_phase(snapshot, model),
            "train_steps": train_args.get("num_steps"), "eval_steps": eval_args.get("num_steps"),
            "hyperparameters": custom_config.get("training"),
            "max_seq_length": custom_config.get("max_seq_length"),
            "max_predictions_per_seq": custom_config.get("max_predictions_per_seq"),
            "bert_config": custom_config.get("bert_config"),
            "checkpoint_dir": custom_config.get("checkpoint_dir"),
        },
        "code_version": custom_config.get("code_version") or (run_code_version(
            [snapshot.executions[i] for i in run.execution_ids if i in snapshot.executions]) if run else None),
        "examples": examples_info,
        "vocabulary": vocabulary,
        "corpus_files": corpus,
        "base_model": _artifact_ref(base_models[0]) if base_models else None,
        "evaluations": evaluations,
        "blessed": any(e["blessed"] for e in evaluations) if evaluations else None,
        "pushes": pushes,
    }


# ----------------------------------------------------------------------------- uses

def downstream(snapshot: Snapshot, artifact: Artifact) -> list[tuple[Execution, Artifact]]:
    """(producing execution, artifact) for everything made from `artifact`, breadth first."""
    seen = {artifact.id}
    queue = [artifact]
    found = []
    while queue:
        current = queue.pop(0)
        made: list[tuple[Execution, Artifact]] = []
        for execution in snapshot.consumers(current.id):
            made += [(execution, snapshot.artifacts[i]) for ids in execution.outputs.values() for i in ids
                     if i in snapshot.artifacts]
        if current.type == "components.PretrainingRecords":
            made += examples_from_records(snapshot, current)
        for execution, child in made:
            if child.id not in seen:
                seen.add(child.id)
                found.append((execution, child))
                queue.append(child)
    return found


def uses(snapshot: Snapshot, spec: str) -> dict:
    """Everything made from the artifact named by `spec` (an id or URI), and the models among it."""
    artifact = find_artifact(snapshot, spec)
    made = downstream(snapshot, artifact)
    rows = []
    for execution, child in made:
        run = snapshot.run_of(execution.id)
        rows.append({"id": child.id, "type": child.type, "uri": child.uri, "made_by": execution.node_id,
                     "run_id": run.id if run else None})
    return {"artifact": _artifact_ref(artifact), "downstream": rows,
            "models": [r["id"] for r in rows if r["type"] == "Model"]}


# ----------------------------------------------------------------------------- diff

# What identifies an artifact or times a step rather than describing what went into a
# model: left out of a diff (two runs of the same inputs differ in all of these).
_IDENTITY_KEYS = {"id", "uri", "created", "execution_id", "run_id", "evaluation", "blessing", "checkpoint_dir",
                  "metrics_error", "state", "seconds"}


def _flatten(value: Any, prefix: str, out: dict) -> None:
    if isinstance(value, dict):
        for key in sorted(value):
            if key not in _IDENTITY_KEYS:
                _flatten(value[key], f"{prefix}.{key}" if prefix else key, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}[{index}]", out)
    else:
        out[prefix] = value


DIFF_SECTIONS = ("data", "vocabulary", "config", "code_version", "base_model", "evaluation")


def _diff_sections(lineage: dict) -> dict:
    trainer = lineage["trainer"] or {}
    return {
        "data": {"examples": lineage["examples"], "corpus_files": lineage["corpus_files"]},
        "vocabulary": lineage["vocabulary"],
        "config": {k: v for k, v in trainer.items() if k not in _IDENTITY_KEYS},
        "code_version": lineage["code_version"],
        "base_model": {"model": (lineage["base_model"] or {}).get("id")},
        "evaluation": {"thresholds": [e["thresholds"] for e in lineage["evaluations"]],
                       "blessed": lineage["blessed"], "pushed": any(p["pushed"] for p in lineage["pushes"])},
    }


def diff(snapshot: Snapshot, spec_a: str, spec_b: str, metrics_reader: Optional[MetricsReader] = None) -> dict:
    """What differs between two models' lineage, by section, and their metrics side by side."""
    reader = _Metrics(metrics_reader)
    lineage_a = model_lineage(snapshot, spec_a, lambda uri: _reraise(reader(uri)))
    lineage_b = model_lineage(snapshot, spec_b, lambda uri: _reraise(reader(uri)))
    sections_a, sections_b = _diff_sections(lineage_a), _diff_sections(lineage_b)
    differences = []
    for section in DIFF_SECTIONS:
        flat_a, flat_b = {}, {}
        _flatten(sections_a[section], "", flat_a)
        _flatten(sections_b[section], "", flat_b)
        for key in sorted(set(flat_a) | set(flat_b)):
            if flat_a.get(key) != flat_b.get(key):
                differences.append({"section": section, "key": key, "a": flat_a.get(key), "b": flat_b.get(key)})
    metrics_a = _first_metrics(lineage_a)
    metrics_b = _first_metrics(lineage_b)
    side_by_side = {}
    for name in METRIC_NAMES:
        a, b = (metrics_a or {}).get(name), (metrics_b or {}).get(name)
        side_by_side[name] = {"a": a, "b": b, "b_minus_a": (b - a) if a is not None and b is not None else None}
    return {"a": lineage_a["model"], "b": lineage_b["model"], "differences": differences, "metrics": side_by_side}


def _reraise(result: tuple[Optional[dict], Optional[str]]) -> dict:
    values, error = result
    if values is None:
        raise RuntimeError(error)
    return values


def _first_metrics(lineage: dict) -> Optional[dict]:
    for evaluation in lineage["evaluations"]:
        if evaluation["metrics"]:
            return evaluation["metrics"]
    return None


# ----------------------------------------------------------------------------- the lineage graph

def model_subgraph(snapshot: Snapshot, model: Artifact) -> tuple[list[Artifact], list[Execution], list[tuple]]:
    """The artifacts and executions of a model's lineage and the edges between them.

    Upstream: every ancestor (through producers' inputs and the records link). Downstream:
    the model's own run's executions that consumed it and what they made. Edges are
    (from id, to id, input/output key, implicit?) with ids prefixed `a:`/`e:`.
    """
    artifacts: dict[str, Artifact] = {}
    executions: dict[str, Execution] = {}
    edges: set[tuple] = set()

    def add_upstream(artifact: Artifact) -> None:
        if artifact.id in artifacts:
            return
        artifacts[artifact.id] = artifact
        producer = snapshot.producer(artifact.id)
        if producer is None:
            return
        edges.add((f"e:{producer.id}", f"a:{artifact.id}", _key_of(producer.outputs, artifact.id), False))
        if producer.id in executions:
            return
        executions[producer.id] = producer
        for key, ids in producer.inputs.items():
            for i in ids:
                if i in snapshot.artifacts:
                    edges.add((f"a:{i}", f"e:{producer.id}", key, False))
                    add_upstream(snapshot.artifacts[i])
        for records in records_for_examples(snapshot, producer) if "examples" in producer.outputs else []:
            edges.add((f"a:{records.id}", f"e:{producer.id}", RECORDS_LINK_KEY, True))
            add_upstream(records)

    add_upstream(model)
    run = snapshot.run_of(snapshot.producer(model.id).id) if snapshot.producer(model.id) else None
    queue = [model]
    while queue:
        current = queue.pop(0)
        for execution in snapshot.consumers(current.id):
            if run is not None and execution.id not in run.execution_ids:
                continue
            executions[execution.id] = execution
            for key, ids in execution.inputs.items():
                for i in ids:
                    if i in snapshot.artifacts:
                        edges.add((f"a:{i}", f"e:{execution.id}", key, False))
                        artifacts.setdefault(i, snapshot.artifacts[i])
            for key, ids in execution.outputs.items():
                for i in ids:
                    if i in snapshot.artifacts and i not in artifacts:
                        artifacts[i] = snapshot.artifacts[i]
                        edges.add((f"e:{execution.id}", f"a:{i}", key, False))
                        queue.append(snapshot.artifacts[i])
                    elif i in snapshot.artifacts:
                        edges.add((f"e:{execution.id}", f"a:{i}", key, False))
    return list(artifacts.values()), list(executions.values()), sorted(edges)


def _key_of(side: dict[str, list[str]], artifact_id: str) -> str:
    for key, ids in side.items():
        if artifact_id in ids:
            return key
    return ""

