"""Two-phase pretraining end to end: one LocalDagRunner run of the tiny configuration at
sequence length 32, then 64, checked through ML-metadata, `bertpipe lineage` and the summary;
then the same configuration's Vertex AI spec run task by task by `bertpipe run-spec`."""
from __future__ import annotations

import contextlib
import glob
import io
import json
import os

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2

from tfx.types import standard_artifacts

from components.evaluator.results import read_eval_metrics
from components.trainer.component import run_checkpoint_dir
from conftest import TINY_PIPELINE_FLAGS, TINY_RUN_FLAGS, corpus_slice
from kubeflow import local_metadata
from pipeline import cli

pytestmark = pytest.mark.e2e

PHASE1_STEPS = int(TINY_RUN_FLAGS[TINY_RUN_FLAGS.index("--num_train_steps") + 1])
PHASE2_FLAGS = ["--phase2_max_seq_length", "64", "--phase2_max_predictions_per_seq", "10",
                "--phase2_num_train_steps", "6", "--phase2_num_warmup_steps", "1",
                "--phase2_train_batch_size", "4", "--phase2_learning_rate", "5e-4"]


@pytest.fixture(scope="module")
def two_phase_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("two_phase_run")
    corpus = corpus_slice(str(out / "corpus.txt"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = cli.main(["run", "--corpus", corpus, "--output_dir", str(out)] + TINY_RUN_FLAGS + PHASE2_FLAGS)
    assert status == 0
    return out, printed.getvalue()


def _store(out) -> mlmd.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(out / "metadata.sqlite")
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def _lineage(out, *query) -> dict:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(["lineage", *query, "--metadata_path", str(out / "metadata.sqlite"), "--json"]) == 0
    return json.loads(printed.getvalue())["result"]


def _trained_state(model_uri: str) -> dict:
    with open(os.path.join(model_uri, "Checkpoint", "warm_start.json"), encoding="utf-8") as f:
        return json.load(f)


def test_both_models_are_recorded_and_phase2_is_warm_started_from_phase1(two_phase_run):
    out, _ = two_phase_run
    store = _store(out)
    models = sorted(store.get_artifacts_by_type("Model"), key=lambda a: a.id)
    assert len(models) == 2
    phase1, phase2 = models
    # ML-metadata: phase 2's Trainer read phase 1's model as its base_model input.
    events = store.get_events_by_artifact_ids([phase2.id])
    [trainer2] = {e.execution_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT}
    base_inputs = [e.artifact_id for e in store.get_events_by_execution_ids([trainer2])
                   if e.type == metadata_store_pb2.Event.INPUT and e.path.steps[0].key == "base_model"]
    assert base_inputs == [phase1.id]
    assert phase2.custom_properties["base_model_id"].int_value == phase1.id
    # What the Trainers did: phase 1 from scratch at 32, phase 2 weights only (fresh optimizer) at 64.
    first, second = _trained_state(phase1.uri), _trained_state(phase2.uri)
    assert (first["max_seq_length"], first["warm_start"], first["total_steps"]) == (32, "none", PHASE1_STEPS)
    assert (second["max_seq_length"], second["max_predictions_per_seq"], second["warm_start"]) == (64, 10, "weights")
    assert second["global_step"] == 6 and second["total_steps"] == PHASE1_STEPS + 6
    assert second["base_model"] == os.path.join(phase1.uri, "Format-Serving")
    # Each phase checkpoints in its own directory; phase 2's run directory names its base by
    # the directory phase 1 trained in (what a rerun keeps), not by the Model artifact.
    assert first["checkpoint_dir"] != second["checkpoint_dir"]
    assert second["checkpoint_dir"].split("/")[-2].endswith("-phase2")
    assert glob.glob(os.path.join(second["checkpoint_dir"], "ckpt-6.index"))
    [examples2] = [e for e in store.get_artifacts_by_type("Examples") if "ImportExampleGenPhase2" in e.uri]
    examples, base = standard_artifacts.Examples(), standard_artifacts.Model()
    examples.set_mlmd_artifact(examples2)
    base.set_mlmd_artifact(phase1)
    phase2_root = os.path.dirname(second["checkpoint_dir"])
    assert second["checkpoint_dir"] == run_checkpoint_dir(phase2_root, [examples], [base], base_by_training=True)
    assert second["checkpoint_dir"] != run_checkpoint_dir(phase2_root, [examples], [base])


def test_lineage_shows_phase1_as_the_base_of_the_pushed_phase2_model(two_phase_run):
    out, _ = two_phase_run
    pushed = _lineage(out, "model", "pushed")
    assert pushed["trainer"]["max_seq_length"] == 64
    assert pushed["trainer"]["hyperparameters"]["num_train_steps"] == 6
    assert pushed["trainer"]["hyperparameters"]["train_batch_size"] == 4
    [examples] = pushed["examples"]
    assert examples["records"][0]["options"]["max_seq_length"] == 64
    base = pushed["base_model"]
    assert base is not None
    phase1 = _lineage(out, "model", base["id"])
    assert (pushed["trainer"]["phase"], phase1["trainer"]["phase"]) == (2, 1)
    assert phase1["trainer"]["max_seq_length"] == 32
    assert phase1["examples"][0]["records"][0]["options"]["max_seq_length"] == 32
    # The same corpus and vocabulary made both phases' data.
    assert phase1["vocabulary"]["id"] == pushed["vocabulary"]["id"]
    assert phase1["corpus_files"] == pushed["corpus_files"]
    # Only the final model was evaluated and pushed.
    assert phase1["evaluations"] == [] and phase1["pushes"] == []
    assert [e["blessed"] for e in pushed["evaluations"]] == [True]
    [run] = _lineage(out, "runs")
    assert run["model"]["id"] == pushed["model"]["id"] and run["blessed"] is True
    assert run["model"]["phase"] == 2
    assert {"BertTrainer", "BertTrainerPhase2", "PretrainingDataGenPhase2", "ImportExampleGenPhase2"} <= \
        {step["node"] for step in run["steps"]}


def test_the_summary_reports_phase2(two_phase_run):
    out, printed = two_phase_run
    store = _store(out)
    phase2 = max(store.get_artifacts_by_type("Model"), key=lambda a: a.id)
    assert f"model:            {phase2.uri}/Format-Serving" in printed
    [evaluation] = store.get_artifacts_by_type("ModelEvaluation")
    [examples2] = [e for e in store.get_artifacts_by_type("Examples") if "ImportExampleGenPhase2" in e.uri]
    inputs = {e.path.steps[0].key: e.artifact_id for e in store.get_events_by_execution_ids(
        [e.execution_id for e in store.get_events_by_artifact_ids([evaluation.id])])
        if e.type == metadata_store_pb2.Event.INPUT}
    assert inputs["model"] == phase2.id and inputs["examples"] == examples2.id  # phase 2's eval split
    [served] = os.listdir(out / "serving_model")
    assert os.path.exists(out / "serving_model" / served / "saved_model.pb")


SPEC_TASKS = {"VocabularyGen", "PretrainingDataGen", "ImportExampleGen", "BertTrainer", "PretrainingDataGenPhase2",
              "ImportExampleGenPhase2", "BertTrainerPhase2", "Evaluator", "Pusher"}


@pytest.fixture(scope="module")
def two_phase_spec_run(two_phase_run, tmp_path_factory):
    """The same configuration compiled as the Vertex AI retraining spec and run task by task with
    `bertpipe run-spec` (TFX's container entrypoint in subprocesses) as a first run: the
    resolvers find no blessed model, phase 1 trains from scratch and phase 2 from phase 1."""
    out, _ = two_phase_run
    spec_out = tmp_path_factory.mktemp("two_phase_spec_run")
    spec = spec_out / "pipeline.json"
    flags = ["--corpus", str(out / "corpus.txt")] + TINY_PIPELINE_FLAGS + PHASE2_FLAGS
    assert cli.main(["compile", "--output", str(spec), "--pipeline_root", str(spec_out / "root"),
                     "--image", "local/bert-tfx-pipeline:dev", "--local_run", "--retrain"] + flags) == 0
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(["run-spec", str(spec), "--metadata_path", str(spec_out / "metadata.sqlite")]) == 0
    return spec_out, printed.getvalue()


def test_the_vertex_spec_of_two_phases_runs_task_by_task_like_the_local_run(two_phase_run, two_phase_spec_run):
    spec_out, printed = two_phase_spec_run
    store = local_metadata.open_store(str(spec_out / "metadata.sqlite"))
    executions = store.get_executions_by_type(local_metadata.CONTAINER_EXECUTION_TYPE)
    assert {e.custom_properties["task_name"].string_value for e in executions} == SPEC_TASKS
    assert all(e.last_known_state == metadata_store_pb2.Execution.COMPLETE for e in executions)
    assert len(store.get_executions_by_type(local_metadata.RESOLVER_EXECUTION_TYPE)) == 2
    # Lineage read from the run-spec store: phase 2 made the pushed model, from phase 1's.
    pushed = _lineage(spec_out, "model", "pushed")
    assert (pushed["trainer"]["phase"], pushed["trainer"]["max_seq_length"]) == (2, 64)
    phase1 = _lineage(spec_out, "model", pushed["base_model"]["id"])
    assert (phase1["trainer"]["phase"], phase1["trainer"]["max_seq_length"]) == (1, 32)
    assert phase1["base_model"] is None  # the resolver found no blessed model to warm-start from
    assert phase1["evaluations"] == [] and [e["blessed"] for e in pushed["evaluations"]] == [True]
    phase2 = max(store.get_artifacts_by_type("tfx.Model"), key=lambda a: a.id)
    assert str(phase2.id) == pushed["model"]["id"]
    assert f"model:            {phase2.uri}/Format-Serving" in printed
    # Same data, same training: phase 2's do_eval metrics equal the LocalDagRunner run's.
    [from_spec] = [read_eval_metrics(a.uri) for a in store.get_artifacts_by_type("tfx.ModelEvaluation")]
    [local] = [read_eval_metrics(a.uri) for a in _store(two_phase_run[0]).get_artifacts_by_type("ModelEvaluation")]
    assert from_spec.keys() == local.keys()
    for name, value in local.items():
        assert from_spec[name] == pytest.approx(value, abs=1e-5), name
