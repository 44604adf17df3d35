"""Lineage answers for people (plain-text tables) and for scripts (`--json`).

The JSON document is {"query", "pipeline_name", "source", "result"}, `result` being what
components/lineage/queries.py returns for the query; tests/testdata/lineage_keys.json
pins every key, so scripts and CI can rely on them.
"""
from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from components.lineage.queries import METRIC_NAMES

_SHORT_METRICS = {"masked_lm_accuracy": "MLM ACC", "masked_lm_loss": "MLM LOSS",
                  "next_sentence_accuracy": "NSP ACC", "next_sentence_loss": "NSP LOSS"}


def to_json(query: str, pipeline_name: str, source: str, result: Any) -> str:
    return json.dumps({"query": query, "pipeline_name": pipeline_name, "source": source, "result": result},
                      indent=2, sort_keys=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns, two spaces apart, a rule under the headers."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _metric(metrics: Optional[dict], name: str) -> Optional[float]:
    return None if not metrics else metrics.get(name)


def render_runs(pipeline_name: str, source: str, runs: list[dict]) -> str:
    header = f"Runs of pipeline {pipeline_name!r} in {source}, newest first:"
    rows = []
    for run in runs:
        model = run["model"]["id"] if run["model"] else None
        if run["model"] and run["model"]["phase"] is not None:
            model = f"{model} (phase {run['model']['phase']})"
        rows.append([run["run_id"], run["start"], run["end"], run["status"],
                     ",".join(str(s) for s in run["spans"]) or None, model]
                    + [_metric(run["metrics"], n) for n in METRIC_NAMES] + [run["blessed"], run["pushed_to"]])
    lines = [header, table(["RUN", "START", "END", "STATUS", "SPANS", "MODEL"]
                           + [_SHORT_METRICS[n] for n in METRIC_NAMES] + ["BLESSED", "PUSHED TO"], rows)]
    for run in runs:
        if run["status"] != "complete":
            steps = ", ".join(f"{s['node']} {s['state']}" for s in run["steps"]) or "no step recorded"
            verb = "failed" if run["status"] == "failed" else f"is {run['status']}"
            lines.append(f"Run {run['run_id']} {verb}: {steps}.")
        if run["metrics_error"]:
            lines.append(f"Run {run['run_id']}: metrics unreadable ({run['metrics_error']}).")
    return "\n".join(lines)


def _kv(pairs: Sequence[tuple[str, Any]], indent: str = "  ") -> list[str]:
    width = max((len(k) for k, _ in pairs), default=0)
    return [f"{indent}{k.ljust(width)}  {_cell(v)}" for k, v in pairs]


def _corpus_lines(files: Optional[list]) -> list[str]:
    if not files:
        return ["  (corpus files not recorded)"]
    return [f"  {f.get('path')}  {f.get('size_bytes')} bytes  sha256 {f.get('sha256')}" for f in files]


def render_model(lineage: dict) -> str:
    model, trainer = lineage["model"], lineage["trainer"] or {}
    lines = [f"Model {model['id']}  {model['uri']}", f"  run {model['run_id']}, created {model['created']}", "",
             "UPSTREAM"]
    for examples in lineage["examples"]:
        lines.append(f"Examples {examples['id']}  {examples['uri']}")
        lines += _kv([("input", examples["input_base"]), ("patterns", examples["input_patterns"]),
                      ("span", examples["span"]), ("splits", examples["split_names"]),
                      ("split counts", examples["split_counts"])])
        for records in examples["records"]:
            lines.append(f"PretrainingRecords {records['id']}  {records['uri']}")
            lines += _kv([("records_dir", records["records_dir"]), ("options", records["options"]),
                          ("instances", {"train": records["num_train_instances"],
                                         "eval": records["num_eval_instances"]}),
                          ("statistics", records["stats"])])
    vocabulary = lineage["vocabulary"]
    if vocabulary:
        lines.append(f"Vocabulary {vocabulary['id']}  {vocabulary['uri']}  (made by {vocabulary['made_by']})")
        lines += _kv([("size", vocabulary["vocab_size"]), ("lower case", vocabulary["do_lower_case"]),
                      ("file sha256", vocabulary["sha256"])])
    lines.append("Corpus files")
    lines += _corpus_lines(lineage["corpus_files"])
    lines.append(f"Trainer (execution {trainer.get('execution_id')}, {trainer.get('state')})")
    lines += _kv([("phase", trainer.get("phase")),  # 1 or 2 of two-phase pretraining; None: one phase
                  ("train steps", trainer.get("train_steps")), ("eval steps", trainer.get("eval_steps")),
                  ("max_seq_length", trainer.get("max_seq_length")),
                  ("max_predictions_per_seq", trainer.get("max_predictions_per_seq"))])
    lines += _kv(sorted((trainer.get("hyperparameters") or {}).items()), indent="    ")
    lines.append("  BertConfig")
    lines += _kv(sorted((trainer.get("bert_config") or {}).items()), indent="    ")
    base = lineage["base_model"]
    lines.append(f"Base model (warm start): {base['id'] + '  ' + base['uri'] if base else 'none'}")
    code = lineage["code_version"] or {}
    lines.append("Code version" + ("" if code else ": not recorded"))
    if code:
        lines += _kv(sorted(code.items()))
    lines += ["", "DOWNSTREAM"]
    if not lineage["evaluations"]:
        lines.append("  not evaluated")
    for evaluation in lineage["evaluations"]:
        baseline = evaluation["baseline_model"]
        lines.append(f"Evaluation {(evaluation['evaluation'] or {}).get('id')} (execution "
                     f"{evaluation['execution_id']}, {evaluation['state']})  "
                     f"blessed: {_cell(evaluation['blessed'])}")
        lines += _kv([(n, _metric(evaluation["metrics"], n)) for n in METRIC_NAMES]
                     + [("baseline model", baseline["id"] if baseline else None),
                        ("thresholds", evaluation["thresholds"])])
        if evaluation["metrics_error"]:
            lines.append(f"  metrics unreadable: {evaluation['metrics_error']}")
    if not lineage["pushes"]:
        lines.append("Not pushed")
    for push in lineage["pushes"]:
        lines.append(f"Push (execution {push['execution_id']}, {push['state']}): "
                     + (push["destination"] if push["pushed"] else "not pushed (not blessed)"))
        if push.get("registry_model"):
            lines.append(f"  Vertex AI Model Registry: {push['registry_model']}")
    return "\n".join(lines)


def render_uses(result: dict) -> str:
    artifact = result["artifact"]
    head = f"Made from {artifact['type']} {artifact['id']} ({artifact['uri']}):"
    if not result["downstream"]:
        return head + "\n  nothing (no execution used it)"
    rows = [[r["id"], r["type"], r["made_by"], r["run_id"], r["uri"]] for r in result["downstream"]]
    return "\n".join([head, table(["ID", "TYPE", "MADE BY", "RUN", "URI"], rows),
                      f"Models among them: {', '.join(result['models']) or 'none'}"])


def render_diff(result: dict) -> str:
    a, b = result["a"], result["b"]
    lines = [f"A: model {a['id']} (run {a['run_id']})  {a['uri']}",
             f"B: model {b['id']} (run {b['run_id']})  {b['uri']}", ""]
    if result["differences"]:
        lines.append(table(["SECTION", "KEY", "A", "B"],
                           [[d["section"], d["key"], d["a"], d["b"]] for d in result["differences"]]))
    else:
        lines.append("Same data, vocabulary, config and code version.")
    lines += ["", table(["METRIC", "A", "B", "B - A"],
                        [[n, v["a"], v["b"], v["b_minus_a"]] for n, v in result["metrics"].items()])]
    return "\n".join(lines)
