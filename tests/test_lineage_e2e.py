"""`bertpipe lineage` over a store made by real tiny pipeline runs (LocalDagRunner, SQLite).

One store, three runs: a fresh run; a second with a different vocabulary size and more
training steps; a third from the second's records that fails in the Trainer (the records
hold 32 tokens, it asks for 64). The expected answers come from the store itself, read
with plain ML-metadata calls, and from the files the runs wrote, not from the lineage code.
"""
from __future__ import annotations

import hashlib
import json
import os

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2

from components.evaluator.results import read_eval_metrics
from components.lineage import queries
from components.lineage import store as store_lib
from pipeline import cli, code_version
from conftest import TINY_RUN_FLAGS, corpus_slice as _corpus_slice

pytestmark = pytest.mark.e2e

GOLDEN_KEYS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata", "lineage_keys.json")
# Values that are dicts of the pipeline's own settings (TrainerParams, PretrainingDataOptions,
# the data job's statistics, TFMA thresholds): their keys are pinned where they are defined.
FREE_FORM = {"hyperparameters", "bert_config", "options", "stats", "thresholds", "split_counts", "input_patterns"}


def _raw_store(path: str) -> mlmd.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def _run_artifacts(store: mlmd.MetadataStore) -> list[dict[str, list]]:
    """Per run (oldest first): artifact type name -> artifacts attributed to that run's context."""
    types = {t.id: t.name for t in store.get_artifact_types()}
    runs = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.create_time_since_epoch)
    out = []
    for run in runs:
        by_type: dict[str, list] = {}
        for artifact in store.get_artifacts_by_context(run.id):
            by_type.setdefault(types[artifact.type_id], []).append(artifact)
        out.append({"run_id": run.name, **by_type})
    return out


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def lineage_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("lineage_runs")
    corpus = _corpus_slice(str(out / "corpus.txt"))
    assert cli.main(["run", "--corpus", corpus, "--output_dir", str(out)] + TINY_RUN_FLAGS) == 0
    assert cli.main(["run", "--corpus", corpus, "--output_dir", str(out)] + TINY_RUN_FLAGS
                    + ["--vocab_size", "300", "--num_train_steps", "18"]) == 0
    metadata_path = str(out / "metadata.sqlite")
    second = _run_artifacts(_raw_store(metadata_path))[1]
    [records] = second["components.PretrainingRecords"]
    [vocab] = second["components.Vocabulary"]
    failing = ["--examples", records.custom_properties["records_dir"].string_value,
               "--vocab_file", os.path.join(vocab.uri, "vocab.txt"), "--output_dir", str(out),
               "--max_seq_length", "64", "--max_predictions_per_seq", "5", "--train_batch_size", "8",
               "--eval_batch_size", "8", "--num_train_steps", "6", "--num_warmup_steps", "1",
               "--save_checkpoints_steps", "6", "--iterations_per_loop", "3", "--max_eval_steps", "3",
               "--direct_num_workers", "1"]
    assert cli.main(["run"] + failing) == 2  # the Trainer's data check: records of 32 tokens, not 64
    return {"dir": out, "metadata_path": metadata_path, "corpus": corpus,
            "runs": _run_artifacts(_raw_store(metadata_path))}


def _snapshot(lineage_store):
    path = lineage_store["metadata_path"]
    return store_lib.read_snapshot(store_lib.connect(store_lib.sqlite_connection_config(path), path),
                                   "bert-pretraining", path)


def _lineage_json(capsys, *args) -> dict:
    assert cli.main(["lineage", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_runs_newest_first_with_models_metrics_blessing_and_the_failed_run(lineage_store, capsys):
    first, second, third = lineage_store["runs"]
    document = _lineage_json(capsys, "runs", "--metadata_path", lineage_store["metadata_path"])
    runs = document["result"]
    assert [r["run_id"] for r in runs] == [third["run_id"], second["run_id"], first["run_id"]]
    failed = runs[0]
    assert failed["status"] == "failed" and failed["model"] is None and failed["metrics"] is None
    assert {"node": "BertTrainer", "state": "FAILED"} in failed["steps"]
    assert {"node": "ImportExampleGen", "state": "COMPLETE"} in failed["steps"]
    for row, expected in ((runs[1], second), (runs[2], first)):
        [model] = expected["Model"]
        [evaluation] = expected["ModelEvaluation"]
        [pushed] = expected["PushedModel"]
        assert row["status"] == "complete"
        assert row["model"] == {"id": str(model.id), "type": "Model", "uri": model.uri, "phase": None}  # one phase
        assert row["metrics"] == pytest.approx(read_eval_metrics(evaluation.uri))
        assert row["blessed"] is True and row["spans"] == [0]
        assert row["pushed_to"] == pushed.custom_properties["pushed_destination"].string_value
        assert os.path.exists(os.path.join(row["pushed_to"], "saved_model.pb"))
    # The table names the failure and what got done before it.
    assert cli.main(["lineage", "runs", "--metadata_path", lineage_store["metadata_path"]]) == 0
    table = capsys.readouterr().out
    assert f"Run {third['run_id']} failed: " in table and "BertTrainer FAILED" in table


def test_model_specs_resolve_to_the_right_model(lineage_store):
    snapshot = _snapshot(lineage_store)
    first, second, _ = lineage_store["runs"]
    [model_1], [model_2] = first["Model"], second["Model"]
    assert queries.find_model(snapshot, "latest").id == str(model_2.id)
    assert queries.find_model(snapshot, "latest-blessed").id == str(model_2.id)
    assert queries.find_model(snapshot, "pushed").id == str(model_2.id)
    assert queries.find_model(snapshot, str(model_1.id)).id == str(model_1.id)
    assert queries.find_model(snapshot, model_1.uri + "/Format-Serving").id == str(model_1.id)
    destination = first["PushedModel"][0].custom_properties["pushed_destination"].string_value
    assert queries.find_model(snapshot, destination).id == str(model_1.id)


def test_model_upstream_and_downstream(lineage_store, capsys):
    first = lineage_store["runs"][0]
    [model] = first["Model"]
    [vocab] = first["components.Vocabulary"]
    [records] = first["components.PretrainingRecords"]
    [examples] = first["Examples"]
    [evaluation] = first["ModelEvaluation"]
    lineage = _lineage_json(capsys, "model", str(model.id), "--metadata_path",
                            lineage_store["metadata_path"])["result"]
    assert lineage["model"]["uri"] == model.uri and lineage["model"]["run_id"] == first["run_id"]
    vocab_file = os.path.join(vocab.uri, "vocab.txt")
    with open(vocab_file, encoding="utf-8") as f:
        vocab_lines = sum(1 for _ in f)
    assert lineage["vocabulary"]["id"] == str(vocab.id) and lineage["vocabulary"]["vocab_size"] == vocab_lines
    assert lineage["vocabulary"]["sha256"] == _sha256(vocab_file)
    corpus = lineage_store["corpus"]
    assert lineage["corpus_files"] == [{"path": corpus, "size_bytes": os.path.getsize(corpus),
                                        "sha256": _sha256(corpus)}]
    [examples_info] = lineage["examples"]
    assert examples_info["id"] == str(examples.id) and examples_info["span"] == 0
    assert examples_info["input_patterns"] == {"train": "train/*", "eval": "eval/*"}
    [records_info] = examples_info["records"]
    assert records_info["id"] == str(records.id)
    assert records_info["options"]["max_seq_length"] == 32 and records_info["options"]["dupe_factor"] == 1
    # The split counts the records recorded are the examples ImportExampleGen copied.
    import tensorflow as tf

    for split in ("train", "eval"):
        files = tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{split}", "*"))
        copied = sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))
        assert examples_info["split_counts"][split] == copied > 0
    trainer = lineage["trainer"]
    assert trainer["train_steps"] == 12 and trainer["hyperparameters"]["learning_rate"] == pytest.approx(1e-3)
    assert trainer["bert_config"]["hidden_size"] > 0 and trainer["max_seq_length"] == 32
    assert lineage["base_model"] is None
    current = code_version.current().to_dict()
    assert lineage["code_version"]["git_commit"] == current["git_commit"]
    assert lineage["code_version"]["package_version"] == current["package_version"]
    [evaluation_info] = lineage["evaluations"]
    assert evaluation_info["evaluation"]["id"] == str(evaluation.id)
    assert evaluation_info["metrics"] == pytest.approx(read_eval_metrics(evaluation.uri))
    assert evaluation_info["thresholds"] == {"masked_lm_accuracy": {"lower_bound": 0.0}}
    assert evaluation_info["baseline_model"] is None and evaluation_info["blessed"] is True
    [push] = lineage["pushes"]
    assert push["pushed"] and push["destination"] == \
        first["PushedModel"][0].custom_properties["pushed_destination"].string_value


def test_code_version_is_recorded_on_the_data_executions(lineage_store):
    snapshot = _snapshot(lineage_store)
    data_steps = [e for e in snapshot.executions.values() if e.node_id in ("VocabularyGen", "PretrainingDataGen")]
    assert len(data_steps) == 4
    for execution in data_steps:
        assert execution.json_prop("code_version")["git_commit"] == code_version.current().git_commit


def test_uses_of_a_vocabulary_and_of_records(lineage_store, capsys):
    first, second, third = lineage_store["runs"]
    [vocab_1] = first["components.Vocabulary"]
    result = _lineage_json(capsys, "uses", str(vocab_1.id), "--metadata_path", lineage_store["metadata_path"])
    assert result["result"]["models"] == [str(first["Model"][0].id)]
    made = {r["type"] for r in result["result"]["downstream"]}
    assert {"components.PretrainingRecords", "Examples", "Model", "ModelEvaluation", "ModelBlessing",
            "PushedModel"} <= made
    # Records reach the Examples ImportExampleGen copied from their directory (no MLMD event
    # links them), and so the model; the third run imported that directory itself, without records.
    [records_2] = second["components.PretrainingRecords"]
    result = _lineage_json(capsys, "uses", records_2.uri, "--metadata_path", lineage_store["metadata_path"])
    ids = {r["id"] for r in result["result"]["downstream"]}
    assert str(second["Examples"][0].id) in ids and result["result"]["models"] == [str(second["Model"][0].id)]
    assert str(third["Examples"][0].id) not in ids


def test_diff_shows_vocabulary_and_config_and_metrics_side_by_side(lineage_store, capsys):
    first, second, _ = lineage_store["runs"]
    result = _lineage_json(capsys, "diff", str(first["Model"][0].id), "latest", "--metadata_path",
                           lineage_store["metadata_path"])["result"]
    differences = {(d["section"], d["key"]): (d["a"], d["b"]) for d in result["differences"]}
    assert differences[("config", "train_steps")] == (12, 18)
    assert differences[("config", "hyperparameters.num_train_steps")] == (12, 18)
    assert ("vocabulary", "vocab_size") in differences and ("vocabulary", "sha256") in differences
    assert not any(section == "data" and "corpus_files" in key for section, key in differences)  # same corpus
    metrics_a = read_eval_metrics(first["ModelEvaluation"][0].uri)
    metrics_b = read_eval_metrics(second["ModelEvaluation"][0].uri)
    for name, values in result["metrics"].items():
        assert values["a"] == pytest.approx(metrics_a[name]) and values["b"] == pytest.approx(metrics_b[name])
        assert values["b_minus_a"] == pytest.approx(metrics_b[name] - metrics_a[name])


def _key_paths(value, prefix: str = "") -> set[str]:
    paths = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            paths.add(path)
            if key not in FREE_FORM:
                paths |= _key_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            paths |= _key_paths(item, f"{prefix}[]")
    return paths


def test_json_keys_are_stable(lineage_store, capsys):
    """The keys of every query's --json, against the golden file documented for scripts."""
    path = lineage_store["metadata_path"]
    first = lineage_store["runs"][0]
    found = {
        "runs": _lineage_json(capsys, "runs", "--metadata_path", path),
        "model": _lineage_json(capsys, "model", "latest", "--metadata_path", path),
        "uses": _lineage_json(capsys, "uses", str(first["components.Vocabulary"][0].id), "--metadata_path", path),
        "diff": _lineage_json(capsys, "diff", str(first["Model"][0].id), "latest", "--metadata_path", path),
    }
    keys = {query: sorted(_key_paths(document)) for query, document in found.items()}
    with open(GOLDEN_KEYS, encoding="utf-8") as f:
        golden = json.load(f)
    assert keys == golden


@pytest.mark.parametrize("extension", [".svg", ".png", ".dot", ".mmd"])
def test_graph_file_names_every_node(lineage_store, tmp_path, capsys, extension):
    from components.lineage import graph

    snapshot = _snapshot(lineage_store)
    model = queries.find_model(snapshot, "latest")
    artifacts, executions, edges = queries.model_subgraph(snapshot, model)
    labels = [graph.artifact_label(a) for a in artifacts] + [graph.execution_label(e) for e in executions]
    # Upstream down to the vocabulary's execution, downstream to the push.
    assert {"VocabularyGen", "PretrainingDataGen", "ImportExampleGen", "BertTrainer", "Evaluator", "Pusher"} == \
        {e.node_id for e in executions}
    assert {"components.Vocabulary", "components.PretrainingRecords", "Examples", "Model", "ModelEvaluation",
            "ModelBlessing", "PushedModel"} <= {a.type for a in artifacts}
    target = str(tmp_path / f"lineage{extension}")
    assert cli.main(["lineage", "model", "latest", "--graph", target, "--metadata_path",
                     lineage_store["metadata_path"]]) == 0
    assert f"Lineage graph written to {target}" in capsys.readouterr().out
    assert os.listdir(tmp_path) == [f"lineage{extension}"]  # no temp file left
    if extension == ".png":
        with open(target, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        return
    with open(target, encoding="utf-8") as f:
        text = f.read()
    for label in labels:
        assert label in text, label
    if extension in (".dot", ".mmd"):
        arrows = text.count(" -> ") if extension == ".dot" else text.count("-->") + text.count("-.->")
        assert arrows == len(edges)


def test_bad_input_is_one_clear_line(lineage_store, tmp_path, capsys):
    path = lineage_store["metadata_path"]
    empty = str(tmp_path / "empty.sqlite")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = empty
    mlmd.MetadataStore(config)  # creates an empty store
    not_a_store = tmp_path / "notes.sqlite"
    not_a_store.write_text("not a database\n" * 100)
    first = lineage_store["runs"][0]
    cases = [
        (["runs", "--metadata_path", str(tmp_path / "missing.sqlite")], "no such ML-metadata store"),
        (["runs", "--metadata_path", empty], "holds no pipeline runs (an empty store)"),
        (["runs", "--metadata_path", str(not_a_store)], "cannot"),
        (["runs", "--metadata_path", path, "--pipeline_name", "taxi"], "only of ['bert-pretraining']"),
        (["model", "999999", "--metadata_path", path], "no artifact with id or URI '999999'"),
        (["model", "/no/such/model", "--metadata_path", path], "no artifact with id or URI '/no/such/model'"),
        (["model", str(first["Examples"][0].id), "--metadata_path", path], "is a Examples, not a Model"),
        (["uses", "424242", "--metadata_path", path], "no artifact with id or URI '424242'"),
        (["diff", "latest", "nope", "--metadata_path", path], "no artifact with id or URI 'nope'"),
        (["model", "--graph", str(tmp_path / "g.jpeg"), "--metadata_path", path], "unknown format '.jpeg'"),
        (["model", "--graph", str(tmp_path / "no" / "g.svg"), "--metadata_path", path], "does not exist"),
        (["runs", "--metadata_mysql_database", "mlmd", "--metadata_mysql_port", "1"], "cannot open"),
    ]
    for args, message in cases:
        assert cli.main(["lineage", *args]) == 2, args
        err = capsys.readouterr().err
        # MLMD's C++ client may log its own line first (to the process's stderr, not captured here).
        [line] = [l for l in err.splitlines() if l.startswith("bertpipe lineage: error:")]
        assert message in line and "Traceback" not in err, (args, err)


def test_lineage_answers_quietly_without_importing_tensorflow(lineage_store):
    """`bertpipe lineage runs` as a user runs it (console script, no Makefile variables): the
    answer with its metrics, nothing on stderr, and neither TensorFlow nor TFMA imported (the
    evaluation files are read directly; benchmarks/bench_lineage.py gives the time)."""
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel

    from pipeline import quiet  # pylint: disable=import-outside-toplevel

    code = ("import json, sys\nfrom pipeline.entry_point import main\n"
            f"status = main(['lineage', 'runs', '--json', '--metadata_path', {lineage_store['metadata_path']!r}])\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'tensorflow_model_analysis', 'tfx'})\n"
            "print('IMPORTED', json.dumps(heavy))\nsys.exit(status)\n")
    env = {k: v for k, v in os.environ.items() if k not in quiet.QUIET_ENV}
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    answer, imported = result.stdout.rsplit("IMPORTED ", 1)
    assert json.loads(imported) == []
    rows = [row for row in json.loads(answer)["result"] if row["status"] == "complete"]
    assert len(rows) == 2
    for row, run in zip(rows, lineage_store["runs"][1::-1]):
        [evaluation] = run["ModelEvaluation"]
        assert row["metrics"] == pytest.approx(read_eval_metrics(evaluation.uri))
