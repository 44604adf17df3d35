"""Lineage queries on a hand-written ML-metadata store: warm start, baseline, spans, Vertex-style type names.

The store is written with ML-metadata's own API as TFX records a retraining run: the
second Trainer takes the first model as `base_model`, its Evaluator compares against it
as `baseline_model`, and ImportExampleGen's Examples carry `span`. Types are named as
Vertex AI and compiled specs name them (`tfx.Model`, `tfx.Examples`), which the
reader must treat as LocalDagRunner's `Model` and `Examples`. No pipeline runs here.
"""
from __future__ import annotations

import json

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

from components.lineage import graph, queries
from components.lineage import store as store_lib
from components.lineage.snapshot import canonical_type

PIPELINE = "bert-pretraining"
CODE = {"git_commit": "c0ffee", "git_dirty": False, "package_version": "0.1.0", "source_hash": "feedfacefeedface"}
METRICS = {"/eval/1": 0.10, "/eval/2": 0.25}


class _Writer:
    """Puts artifacts, executions, events and contexts into a store as TFX's publisher does."""

    def __init__(self, store: mlmd.MetadataStore):
        self.store = store
        self.types: dict[str, int] = {}
        self.clock = 1_790_000_000_000
        pipeline_type = store.put_context_type(pb.ContextType(name="pipeline"))
        self.run_type = store.put_context_type(pb.ContextType(name="pipeline_run"))
        self.node_type = store.put_context_type(pb.ContextType(name="node"))
        [self.pipeline] = store.put_contexts([pb.Context(type_id=pipeline_type, name=PIPELINE)])
        self.nodes: dict[str, int] = {}

    def artifact(self, type_name: str, uri: str, **properties) -> int:
        if type_name not in self.types:
            self.types[type_name] = self.store.put_artifact_type(pb.ArtifactType(name=type_name))
        artifact = pb.Artifact(type_id=self.types[type_name], uri=uri, state=pb.Artifact.LIVE)
        for key, value in properties.items():
            if isinstance(value, int):
                artifact.custom_properties[key].int_value = value
            else:
                artifact.custom_properties[key].string_value = value if isinstance(value, str) else json.dumps(value)
        [artifact_id] = self.store.put_artifacts([artifact])
        return artifact_id

    def run(self, name: str) -> int:
        self.clock += 60_000
        [run_id] = self.store.put_contexts([pb.Context(type_id=self.run_type, name=name)])
        self.store.put_parent_contexts([pb.ParentContext(child_id=run_id, parent_id=self.pipeline)])
        return run_id

    def execution(self, run_id: int, node: str, inputs: dict, outputs: dict, state=pb.Execution.COMPLETE,
                  **properties) -> int:
        type_name = f"tfx.components.{node}"
        if type_name not in self.types:
            self.types[type_name] = self.store.put_execution_type(pb.ExecutionType(name=type_name))
        execution = pb.Execution(type_id=self.types[type_name], last_known_state=state)
        for key, value in properties.items():
            execution.custom_properties[key].string_value = value if isinstance(value, str) else json.dumps(value)
        events = []
        for kind, side in ((pb.Event.INPUT, inputs), (pb.Event.OUTPUT, outputs)):
            for key, ids in side.items():
                for artifact_id in ids:
                    event = pb.Event(artifact_id=artifact_id, type=kind)
                    event.path.steps.add().key = key
                    event.path.steps.add().index = 0
                    events.append((None, event))
        if node not in self.nodes:
            [self.nodes[node]] = self.store.put_contexts([pb.Context(type_id=self.node_type, name=f"{PIPELINE}.{node}")])
        [execution_id] = self.store.put_executions([execution])
        self.store.put_attributions_and_associations([], [
            pb.Association(context_id=run_id, execution_id=execution_id),
            pb.Association(context_id=self.nodes[node], execution_id=execution_id)])
        for _, event in events:
            event.execution_id = execution_id
        self.store.put_events([event for _, event in events])
        return execution_id


@pytest.fixture
def retraining_store(tmp_path):
    path = str(tmp_path / "metadata.sqlite")
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = path
    w = _Writer(mlmd.MetadataStore(config))
    ids = {}
    trainer_config = lambda steps: {"training": {"num_train_steps": steps}, "bert_config": {"hidden_size": 32},
                                    "code_version": CODE}
    for run_number, span in ((1, 1), (2, 2)):
        run = w.run(f"run-{run_number}")
        examples = w.artifact("tfx.Examples", f"/examples/{span}", span=span, split_names='["train", "eval"]')
        w.execution(run, "ImportExampleGen", {}, {"examples": [examples]}, input_base=f"/data/span-{span}")
        vocab = ids.get("vocab") or w.artifact("components.Vocabulary", "/vocab", vocab_size=100)
        model = w.artifact("tfx.Model", f"/model/{run_number}")
        trainer_inputs = {"examples": [examples], "vocabulary": [vocab]}
        evaluator_inputs = {"examples": [examples], "model": [model]}
        if run_number == 2:  # the retraining run: warm start from, and compare against, run 1's model
            # The Resolver node's execution outputs the model it resolved (not one it made).
            w.execution(run, "latest_blessed_model_resolver", {}, {"model": [ids["model_1"]]})
            trainer_inputs["base_model"] = [ids["model_1"]]
            evaluator_inputs["baseline_model"] = [ids["model_1"]]
        w.execution(run, "BertTrainer", trainer_inputs, {"model": [model]},
                    custom_config=trainer_config(10 * run_number))
        evaluation = w.artifact("tfx.ModelEvaluation", f"/eval/{run_number}")
        blessing = w.artifact("tfx.ModelBlessing", f"/blessing/{run_number}", blessed=1)
        w.execution(run, "Evaluator", evaluator_inputs, {"evaluation": [evaluation], "blessing": [blessing]},
                    eval_config={"metrics_specs": [{"metrics": [{
                        "config": json.dumps({"name": "masked_lm_accuracy"}),
                        "threshold": {"change_threshold": {"direction": "HIGHER_IS_BETTER",
                                                           "absolute": {"value": -1e-10}}}}]}]})
        ids.update({"vocab": vocab, f"model_{run_number}": model, f"examples_{span}": examples})
    # A third run resolves run 2's model for its warm start, then its Trainer fails.
    run = w.run("run-3")
    examples = w.artifact("tfx.Examples", "/examples/3", span=3, split_names='["train", "eval"]')
    w.execution(run, "ImportExampleGen", {}, {"examples": [examples]}, input_base="/data/span-3")
    w.execution(run, "latest_blessed_model_resolver", {}, {"model": [ids["model_2"]]})
    w.execution(run, "BertTrainer", {"examples": [examples], "vocabulary": [ids["vocab"]],
                                     "base_model": [ids["model_2"]]}, {}, state=pb.Execution.FAILED,
                custom_config=trainer_config(30))
    snapshot = store_lib.read_snapshot(store_lib.connect(store_lib.sqlite_connection_config(path), path),
                                       PIPELINE, path)
    return snapshot, {k: str(v) for k, v in ids.items()}


def _metrics(uri: str) -> dict:
    return {"masked_lm_accuracy": METRICS[uri], "masked_lm_loss": 5.0, "next_sentence_accuracy": 0.5,
            "next_sentence_loss": 0.7}


def test_type_names_of_both_orchestrators():
    assert canonical_type("tfx.Model") == canonical_type("Model") == "Model"
    assert canonical_type("components.Vocabulary") == "components.Vocabulary"


def test_warm_start_baseline_and_spans_are_shown(retraining_store):
    snapshot, ids = retraining_store
    runs = queries.runs(snapshot, _metrics)
    assert [(r["run_id"], r["spans"]) for r in runs] == [("run-3", [3]), ("run-2", [2]), ("run-1", [1])]
    assert runs[0]["status"] == "failed" and runs[1]["status"] == "incomplete"  # no Pusher in this store
    # The failed run made no model: the one its resolver passed on is run 2's.
    assert [r["model"] and r["model"]["id"] for r in runs] == [None, ids["model_2"], ids["model_1"]]
    assert runs[0]["metrics"] is None and runs[0]["blessed"] is None
    lineage = queries.model_lineage(snapshot, "latest", _metrics)
    assert lineage["model"]["id"] == ids["model_2"]
    assert lineage["base_model"] == {"id": ids["model_1"], "type": "Model", "uri": "/model/1"}
    [evaluation] = lineage["evaluations"]
    assert evaluation["baseline_model"]["id"] == ids["model_1"]
    assert evaluation["thresholds"]["masked_lm_accuracy"]["change"]["direction"] == "HIGHER_IS_BETTER"
    assert [e["span"] for e in lineage["examples"]] == [2]
    assert lineage["code_version"] == CODE


def test_uses_follows_warm_starts_and_diff_names_the_base_model(retraining_store):
    snapshot, ids = retraining_store
    assert queries.uses(snapshot, ids["model_1"])["models"] == [ids["model_2"]]
    assert queries.uses(snapshot, ids["examples_1"])["models"] == [ids["model_1"], ids["model_2"]]
    assert queries.uses(snapshot, ids["vocab"])["models"] == [ids["model_1"], ids["model_2"]]
    result = queries.diff(snapshot, ids["model_1"], ids["model_2"], _metrics)
    differences = {(d["section"], d["key"]): (d["a"], d["b"]) for d in result["differences"]}
    assert differences[("base_model", "model")] == (None, ids["model_1"])
    assert differences[("data", "examples[0].span")] == (1, 2)
    assert differences[("config", "hyperparameters.num_train_steps")] == (10, 20)
    assert result["metrics"]["masked_lm_accuracy"]["b_minus_a"] == pytest.approx(0.15)


def test_phase_names_which_trainer_of_a_two_phase_run_made_a_model(tmp_path):
    """Two Trainers in one run as pipeline/phases.py wires them: the run's model is phase 2's,
    phase 1's is its base; a one-phase model (no `phase` in custom_config) has phase None."""
    from components.lineage import render

    path = str(tmp_path / "metadata.sqlite")
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = path
    w = _Writer(mlmd.MetadataStore(config))
    run = w.run("two-phase")
    vocab = w.artifact("components.Vocabulary", "/vocab", vocab_size=100)
    examples = {p: w.artifact("tfx.Examples", f"/examples/{p}", span=0) for p in (1, 2)}
    phase1, phase2 = w.artifact("tfx.Model", "/model/1"), w.artifact("tfx.Model", "/model/2")
    w.execution(run, "BertTrainer", {"examples": [examples[1]], "vocabulary": [vocab]}, {"model": [phase1]},
                custom_config={"training": {"num_train_steps": 90}, "max_seq_length": 128, "phase": 1})
    w.execution(run, "BertTrainerPhase2", {"examples": [examples[2]], "vocabulary": [vocab],
                                           "base_model": [phase1]}, {"model": [phase2]},
                custom_config={"training": {"num_train_steps": 10}, "max_seq_length": 512, "phase": 2})
    one_phase_run = w.run("one-phase")
    one_phase = w.artifact("tfx.Model", "/model/3")
    w.execution(one_phase_run, "BertTrainer", {"examples": [examples[1]], "vocabulary": [vocab]},
                {"model": [one_phase]}, custom_config={"training": {"num_train_steps": 90}})
    snapshot = store_lib.read_snapshot(store_lib.connect(store_lib.sqlite_connection_config(path), path),
                                       PIPELINE, path)
    runs = {r["run_id"]: r for r in queries.runs(snapshot, _metrics)}
    assert runs["two-phase"]["model"] == {"id": str(phase2), "type": "Model", "uri": "/model/2", "phase": 2}
    assert runs["one-phase"]["model"]["phase"] is None
    text = render.render_runs(PIPELINE, path, list(runs.values()))
    assert f"{phase2} (phase 2)" in text and f"{one_phase} (phase" not in text
    lineage2 = queries.model_lineage(snapshot, str(phase2), _metrics)
    assert lineage2["trainer"]["phase"] == 2 and lineage2["base_model"]["id"] == str(phase1)
    assert queries.model_lineage(snapshot, str(phase1), _metrics)["trainer"]["phase"] == 1
    assert queries.model_lineage(snapshot, str(one_phase), _metrics)["trainer"]["phase"] is None
    differences = {(d["section"], d["key"]): (d["a"], d["b"])
                   for d in queries.diff(snapshot, str(phase1), str(phase2), _metrics)["differences"]}
    assert differences[("config", "phase")] == (1, 2)


def test_graph_runs_left_to_right_and_names_every_node(retraining_store, tmp_path):
    snapshot, ids = retraining_store
    artifacts, executions, edges = queries.model_subgraph(snapshot, snapshot.artifacts[ids["model_2"]])
    built = graph.build_graph(artifacts, executions, edges)
    # Upstream reaches the first run through the warm start; every edge points right.
    assert f"a:{ids['model_1']}" in built and f"a:{ids['examples_1']}" in built
    for source, target in built.edges:
        assert built.nodes[target]["column"] > built.nodes[source]["column"]
    for extension in (".dot", ".mmd", ".svg"):
        path = graph.write_graph(str(tmp_path / f"g{extension}"), artifacts, executions, edges, title="t")
        text = open(path, encoding="utf-8").read()
        for _, data in built.nodes(data=True):
            assert data["label"] in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.dot", "g.mmd", "g.svg", "metadata.sqlite"]


def test_a_models_lineage_lists_its_own_evaluation_not_the_one_that_used_it_as_baseline(retraining_store):
    """Run 2's Evaluator read model 1 as `baseline_model`: that evaluation is model 2's."""
    snapshot, ids = retraining_store
    lineage = queries.model_lineage(snapshot, ids["model_1"], _metrics)
    [evaluation] = lineage["evaluations"]
    assert evaluation["evaluation"]["uri"] == "/eval/1"
    assert evaluation["metrics"]["masked_lm_accuracy"] == pytest.approx(0.10)
    assert evaluation["baseline_model"] is None
    [evaluation_2] = queries.model_lineage(snapshot, ids["model_2"], _metrics)["evaluations"]
    assert evaluation_2["evaluation"]["uri"] == "/eval/2" and evaluation_2["baseline_model"]["id"] == ids["model_1"]


@pytest.fixture
def several_runs(tmp_path):
    """Runs as LocalDagRunner records them (tests/mlmd_builder.py): 1 and 2 blessed and pushed,
    3 failed after resolving run 2's model, 4 blessed and pushed, 5 (the newest) not blessed and
    not pushed. Runs 2, 4 and 5 warm-started from, and were compared with, the previous blessed one."""
    from ml_metadata.proto import metadata_store_pb2

    from mlmd_builder import StoreBuilder

    path = str(tmp_path / "metadata.sqlite")
    store = StoreBuilder(path, pipeline_name=PIPELINE)
    run_1 = store.training_run("run-1")
    run_2 = store.training_run("run-2", base_model=run_1["model"], base_blessing=run_1["blessing"])
    failed = store.run("run-3")
    store.resolve(failed, run_2)
    store.execute(failed, "BertTrainer", inputs={"base_model": run_2["model"]},
                  state=metadata_store_pb2.Execution.FAILED)
    run_4 = store.training_run("run-4", base_model=run_2["model"], base_blessing=run_2["blessing"])
    run_5 = store.training_run("run-5", blessed=False, base_model=run_4["model"], base_blessing=run_4["blessing"])
    snapshot = store_lib.read_snapshot(store_lib.connect(store_lib.sqlite_connection_config(path), path),
                                       PIPELINE, path)
    return snapshot, {name: {k: str(v) for k, v in made.items()} for name, made in
                      (("run-1", run_1), ("run-2", run_2), ("run-4", run_4), ("run-5", run_5))}


def test_model_specs_pick_the_right_model_among_several_runs(several_runs):
    snapshot, made = several_runs
    assert queries.find_model(snapshot, "latest").id == made["run-5"]["model"]
    assert queries.find_model(snapshot, "latest-blessed").id == made["run-4"]["model"]
    assert queries.find_model(snapshot, "pushed").id == made["run-4"]["model"]
    assert queries.find_model(snapshot, "/serving/run-2").id == made["run-2"]["model"]
    # Each blessed model's lineage holds its own evaluation and push only, although the
    # next run read it as base and baseline model.
    lineage = queries.model_lineage(snapshot, made["run-4"]["model"], lambda uri: {})
    assert [e["evaluation"]["uri"] for e in lineage["evaluations"]] == ["/e/run-4"]
    assert [p["destination"] for p in lineage["pushes"]] == ["/serving/run-4"]
    assert lineage["base_model"]["id"] == made["run-2"]["model"] and lineage["blessed"] is True
    newest = queries.model_lineage(snapshot, "latest", lambda uri: {})
    assert newest["blessed"] is False and newest["pushes"] == [
        {"execution_id": newest["pushes"][0]["execution_id"], "state": "COMPLETE", "pushed": False,
         "destination": None, "registry_model": None}]
    statuses = [(r["run_id"], r["status"], r["blessed"], r["pushed_to"]) for r in queries.runs(snapshot, lambda u: {})]
    assert statuses == [("run-5", "complete", False, None), ("run-4", "complete", True, "/serving/run-4"),
                        ("run-3", "failed", None, None), ("run-2", "complete", True, "/serving/run-2"),
                        ("run-1", "complete", True, "/serving/run-1")]
