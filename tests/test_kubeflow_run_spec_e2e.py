"""The compiled Vertex AI retraining spec of the tiny pipeline, run task by task with
`bertpipe run-spec` (TFX's container entrypoint in subprocesses, no LocalDagRunner) as a first
run (its resolvers find no blessed model), against the LocalDagRunner run of the same
configuration; then the latest-blessed-model resolver answered from its store."""
from __future__ import annotations

import contextlib
import glob
import io
import os

import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2

from components.evaluator.results import read_eval_metrics
from conftest import TINY_PIPELINE_FLAGS
from kubeflow import local_metadata, pipeline_job
from pipeline import cli
from test_kubeflow_spec_runner import BLESSING_TASK, MODEL_TASK, compile_spec, latest_blessed_model_resolver

pytestmark = pytest.mark.e2e

TASKS = {"VocabularyGen", "PretrainingDataGen", "ImportExampleGen", "BertTrainer", "Evaluator", "Pusher"}


@pytest.fixture(scope="module")
def spec_run(corpus_run, tmp_path_factory):
    """Compiles the configuration of conftest's `corpus_run` (same corpus file and flags) as the
    retraining spec with a local pipeline root and runs it with run-spec; what run-spec printed
    is kept in run_spec.out."""
    out = tmp_path_factory.mktemp("spec_run")
    root, spec = out / "root", out / "pipeline.json"
    flags = ["--corpus", str(corpus_run / "corpus.txt")] + TINY_PIPELINE_FLAGS
    compile_flags = ["--output", str(spec), "--pipeline_root", str(root), "--image", "local/bert-tfx-pipeline:dev",
                     "--local_run", "--retrain"]
    assert cli.main(["compile"] + compile_flags + flags) == 0
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(["run-spec", str(spec), "--metadata_path", str(out / "metadata.sqlite")]) == 0
    (out / "run_spec.out").write_text(printed.getvalue())
    return out


def _store(spec_run):
    return local_metadata.open_store(str(spec_run / "metadata.sqlite"))


def _one(store, title):
    [artifact] = store.get_artifacts_by_type(title)
    return artifact


def test_every_task_ran_its_container_command_and_completed(spec_run):
    store = _store(spec_run)
    executions = store.get_executions_by_type(local_metadata.CONTAINER_EXECUTION_TYPE)
    assert {e.custom_properties["task_name"].string_value for e in executions} == TASKS
    assert all(e.last_known_state == metadata_store_pb2.Execution.COMPLETE for e in executions)
    for execution in executions:
        log = open(execution.custom_properties["log_file"].string_value).read()
        assert "kubeflow_v2_run_executor" in log, execution.name
    # ImportExampleGen's driver ran first: its span and fingerprint reached the executor's input.
    [example_gen] = [e for e in executions if e.custom_properties["task_name"].string_value == "ImportExampleGen"]
    log = open(example_gen.custom_properties["log_file"].string_value).read()
    assert log.index("preCacheCheck driver") < log.index("=== executor")
    examples = _one(store, "tfx.Examples")
    assert examples.custom_properties["input_fingerprint"].string_value.startswith("split:train,num_files:2")
    recorded = example_gen.custom_properties["input:input_fingerprint"].string_value
    assert recorded == examples.custom_properties["input_fingerprint"].string_value
    assert sorted(os.listdir(examples.uri)) == ["Split-eval", "Split-train"]


def test_first_run_resolvers_found_nothing_and_the_trainer_started_from_scratch(spec_run):
    store = _store(spec_run)
    resolvers = store.get_executions_by_type(local_metadata.RESOLVER_EXECUTION_TYPE)
    assert {e.custom_properties["task_name"].string_value for e in resolvers} == {BLESSING_TASK, MODEL_TASK}
    assert all(e.last_known_state == metadata_store_pb2.Execution.COMPLETE for e in resolvers)
    assert len(store.get_artifacts_by_type("tfx.Model")) == 1  # no base model was resolved


def test_run_spec_ends_with_the_summary_bertpipe_run_prints(spec_run):
    """After the task table: the four do_eval metrics, the blessing and the push destination,
    read from this job's executions (the same RunSummary `bertpipe run` prints)."""
    printed = (spec_run / "run_spec.out").read_text()
    table_end = printed.index("  Pusher ")
    summary = printed[table_end:]
    store = _store(spec_run)
    metrics = read_eval_metrics(_one(store, "tfx.ModelEvaluation").uri)
    assert sorted(metrics) == ["masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy",
                               "next_sentence_loss"]
    for name, value in metrics.items():
        assert f"    {name} = {value:.6f}" in summary, name
    assert "  blessed:          yes" in summary
    destination = _one(store, "tfx.PushedModel").custom_properties["pushed_destination"].string_value
    assert f"  pushed to:        {destination}\n" in summary
    assert f"  model:            {_one(store, 'tfx.Model').uri}/Format-Serving" in summary


def test_lineage_links_the_artifacts_through_input_and_output_events(spec_run):
    store = _store(spec_run)
    model, examples = _one(store, "tfx.Model"), _one(store, "tfx.Examples")
    vocabulary = _one(store, "components.Vocabulary")

    def producer_inputs(artifact):
        [producer] = [e.execution_id for e in store.get_events_by_artifact_ids([artifact.id])
                      if e.type == metadata_store_pb2.Event.OUTPUT]
        return {e.artifact_id for e in store.get_events_by_execution_ids([producer])
                if e.type == metadata_store_pb2.Event.INPUT}

    assert producer_inputs(model) == {examples.id, vocabulary.id}
    assert producer_inputs(_one(store, "tfx.ModelBlessing")) == {model.id, examples.id}
    assert producer_inputs(_one(store, "tfx.PushedModel")) == {model.id, _one(store, "tfx.ModelBlessing").id}
    [run] = store.get_contexts_by_type(local_metadata.RUN_CONTEXT_TYPE)
    assert {a.id for a in store.get_artifacts_by_context(run.id)} >= {model.id, examples.id, vocabulary.id}


def test_evaluator_metrics_equal_the_local_dag_runner_run(spec_run, corpus_run):
    store = _store(spec_run)
    from_spec = read_eval_metrics(_one(store, "tfx.ModelEvaluation").uri)
    [local_evaluation] = local_metadata.open_store(str(corpus_run / "metadata.sqlite")).get_artifacts_by_type(
        "ModelEvaluation")
    local = read_eval_metrics(local_evaluation.uri)
    assert from_spec.keys() == local.keys()
    for name, value in local.items():
        assert from_spec[name] == pytest.approx(value, abs=1e-5), name


def test_the_model_is_blessed_and_the_pushed_model_serves(spec_run):
    store = _store(spec_run)
    blessing = _one(store, "tfx.ModelBlessing")
    assert blessing.custom_properties["blessed"].int_value == 1
    assert blessing.custom_properties["current_model_id"].string_value == _one(store, "tfx.Model").name
    pushed = _one(store, "tfx.PushedModel")
    assert pushed.custom_properties["pushed"].int_value == 1
    destination = pushed.custom_properties["pushed_destination"].string_value
    assert destination.startswith(str(spec_run / "root" / "serving_model"))
    serving = tf.saved_model.load(destination).signatures["serving_default"]
    [record_file] = glob.glob(os.path.join(_one(store, "tfx.Examples").uri, "Split-eval", "*"))[:1]
    example = next(iter(tf.data.TFRecordDataset(record_file, compression_type="GZIP")))
    outputs = serving(examples=tf.reshape(example, [1]))
    vocab_size = int(_one(store, "components.Vocabulary").custom_properties["vocab_size"].int_value)
    assert outputs["masked_lm"].shape == (1, 5, vocab_size)  # [B, P, V] log-probs
    assert outputs["next_sentence"].shape == (1, 2)
    assert abs(float(tf.reduce_sum(tf.exp(outputs["next_sentence"]))) - 1.0) < 1e-4


def test_latest_blessed_model_resolver_finds_the_model_this_run_blessed(spec_run, tmp_path):
    """The resolver retraining adds, compiled as TFX 1.16 compiles it, answered from this store."""
    path = compile_spec([latest_blessed_model_resolver()], tmp_path / "resolver.json")
    assert set(pipeline_job.load(path).tasks) == {BLESSING_TASK, MODEL_TASK}
    from kubeflow import spec_runner

    result = spec_runner.run_spec(path, str(tmp_path / "root"), str(spec_run / "metadata.sqlite"))
    outputs = {task.name: task.outputs for task in result.tasks}
    store = _store(spec_run)
    [blessing] = outputs[BLESSING_TASK]["model_blessing"]
    [model] = outputs[MODEL_TASK]["model"]
    assert blessing.name == _one(store, "tfx.ModelBlessing").name
    assert (model.name, model.uri) == (_one(store, "tfx.Model").name, _one(store, "tfx.Model").uri)
    assert local_metadata.schema_title(model.type) == "tfx.Model"


def test_bertpipe_lineage_reads_the_spec_runs_store(spec_run, capsys):
    """The store run-spec writes names task parameters as Vertex ML Metadata does (`input:NAME`);
    `bertpipe lineage` reads the Trainer's settings and code version from it all the same."""
    import json

    from pipeline import code_version

    assert cli.main(["lineage", "model", "latest", "--json", "--metadata_path",
                     str(spec_run / "metadata.sqlite")]) == 0
    lineage = json.loads(capsys.readouterr().out)["result"]
    flags = dict(zip(TINY_PIPELINE_FLAGS[::2], TINY_PIPELINE_FLAGS[1::2]))
    assert lineage["trainer"]["hyperparameters"]["num_train_steps"] == int(flags["--num_train_steps"])
    assert lineage["trainer"]["max_seq_length"] == int(flags["--max_seq_length"])
    assert lineage["code_version"]["source_hash"] == code_version.source_hash()
    # TFX's entrypoint reports custom properties as `custom:NAME` (ImportExampleGen's span here).
    assert [e["span"] for e in lineage["examples"]] == [0]
    assert cli.main(["lineage", "runs", "--json", "--metadata_path", str(spec_run / "metadata.sqlite")]) == 0
    runs = json.loads(capsys.readouterr().out)["result"]
    # The resolver test above may add a run of its own (no model) to this store.
    assert [run["spans"] for run in runs if run["model"]] == [[0]]
