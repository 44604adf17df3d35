"""The run summary reports what the run itself produced, on stores shaped like real runs:
a retraining run whose context also holds the base model and its blessing, a run that
was not blessed, and a failed run between two good ones."""
from __future__ import annotations

import pytest

from pipeline import run_summary
from mlmd_builder import StoreBuilder


@pytest.fixture
def metrics_by_uri(monkeypatch):
    monkeypatch.setattr(run_summary, "read_eval_metrics", lambda uri: {"uri": uri})
    monkeypatch.setattr(run_summary, "read_baseline_metrics", lambda uri: None)


def test_the_summary_is_of_the_callers_run_not_the_newest(tmp_path, metrics_by_uri):
    store = StoreBuilder(str(tmp_path / "m.sqlite"))
    store.training_run("run-a")
    store.training_run("run-b")
    summary = run_summary.summarize(store.config, "p", "run-a", metadata_path="m.sqlite")
    assert summary.run_id == "run-a" and summary.model_uri == "/m/run-a"
    assert summary.metrics == {"uri": "/e/run-a"} and summary.pushed_uri == "/serving/run-a"
    assert run_summary.summarize(store.config, "p", "run-b", metadata_path="m").model_uri == "/m/run-b"
    with pytest.raises(ValueError, match="'run-c'"):
        run_summary.summarize(store.config, "p", "run-c", metadata_path="m")


def test_a_retraining_run_reports_its_new_model_not_the_base_its_resolver_output(tmp_path, metrics_by_uri):
    """Run 2's context holds two Models and two ModelBlessings (the base's and its own);
    run 2 was not blessed, so its summary must say so, although the base's blessing says yes."""
    store = StoreBuilder(str(tmp_path / "m.sqlite"))
    first = store.training_run("run-1")
    store.training_run("run-2", blessed=False, base_model=first["model"], base_blessing=first["blessing"])
    models_in_run_2 = [a for a in store.store.get_artifacts_by_context(store.store.get_context_by_type_and_name(
        "pipeline_run", "run-2").id) if a.uri.startswith("/m/")]
    assert sorted(a.uri for a in models_in_run_2) == ["/m/run-1", "/m/run-2"]  # shaped like a real one

    summary = run_summary.summarize(store.config, "p", "run-2", metadata_path="m")
    assert summary.model_uri == "/m/run-2"
    assert summary.evaluation_uri == "/e/run-2" and summary.metrics == {"uri": "/e/run-2"}
    assert summary.blessed is False and summary.pushed_uri is None

    # A base model made *later* than the new one (ids out of order) changes nothing.
    third = store.training_run("run-3")
    store.training_run("run-4", base_model=third["model"], base_blessing=third["blessing"])
    assert run_summary.summarize(store.config, "p", "run-4", metadata_path="m").pushed_uri == "/serving/run-4"


def test_a_failed_run_between_two_good_ones_is_refused_and_does_not_disturb_them(tmp_path, metrics_by_uri):
    from ml_metadata.proto import metadata_store_pb2

    store = StoreBuilder(str(tmp_path / "m.sqlite"))
    first = store.training_run("run-1")
    failed = store.run("run-2")
    store.resolve(failed, first)
    store.execute(failed, "BertTrainer", inputs={"base_model": first["model"]},
                  state=metadata_store_pb2.Execution.FAILED)
    store.training_run("run-3", base_model=first["model"], base_blessing=first["blessing"])

    with pytest.raises(ValueError, match="run-2 .* made 0 PushedModel"):
        run_summary.summarize(store.config, "p", "run-2", metadata_path="m")
    assert run_summary.summarize(store.config, "p", "run-1", metadata_path="m").model_uri == "/m/run-1"
    assert run_summary.summarize(store.config, "p", "run-3", metadata_path="m").model_uri == "/m/run-3"


def test_a_pusher_that_read_a_model_the_run_did_not_make_is_refused(tmp_path, metrics_by_uri):
    store = StoreBuilder(str(tmp_path / "m.sqlite"))
    first = store.training_run("run-1")
    run = store.run("run-2")
    store.resolve(run, first)
    pushed = store.artifact("PushedModel", "/p/run-2", pushed=1, pushed_destination="/serving/x")
    store.execute(run, "Pusher", inputs={"model": first["model"], "model_blessing": first["blessing"]},
                  outputs={"pushed_model": pushed})
    with pytest.raises(ValueError, match="did not make"):
        run_summary.summarize(store.config, "p", "run-2", metadata_path="m")


def test_a_two_phase_run_reports_the_phase2_model_the_pusher_read(tmp_path, metrics_by_uri):
    """Two Trainers in one run: phase 2 (warm-started from phase 1's model) is what the Evaluator
    judged and the Pusher pushed. Phase 2's Model has the smaller id here, so neither "the
    newest model of the run" nor "the first Trainer's" would give it."""
    store = StoreBuilder(str(tmp_path / "m.sqlite"))
    run = store.run("run-1")
    phase2 = store.artifact("Model", "/m/phase2")
    phase1 = store.artifact("Model", "/m/phase1")
    store.execute(run, "BertTrainer", outputs={"model": phase1})
    store.execute(run, "BertTrainerPhase2", inputs={"base_model": phase1}, outputs={"model": phase2})
    evaluation = store.artifact("ModelEvaluation", "/e/phase2")
    blessing = store.artifact("ModelBlessing", "/b/phase2", blessed=1, current_model_id=phase2)
    store.execute(run, "Evaluator", inputs={"model": phase2}, outputs={"evaluation": evaluation, "blessing": blessing})
    pushed = store.artifact("PushedModel", "/p/phase2", pushed=1, pushed_destination="/serving/phase2")
    store.execute(run, "Pusher", inputs={"model": phase2, "model_blessing": blessing}, outputs={"pushed_model": pushed})

    summary = run_summary.summarize(store.config, "p", "run-1", metadata_path="m")
    assert summary.model_uri == "/m/phase2" and summary.evaluation_uri == "/e/phase2"
    assert summary.blessed and summary.pushed_uri == "/serving/phase2"
