"""The whole pipeline with LocalDagRunner on a tiny slice, checked through ML-metadata.

The run itself is conftest's session fixture `corpus_run`, which the run-spec test compares against."""
from __future__ import annotations

import math
import os

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2

from conftest import TINY_RUN_FLAGS, corpus_slice as _corpus_slice
from pipeline import cli

pytestmark = pytest.mark.e2e


def _store(metadata_path: str) -> mlmd.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def _by_type(store: mlmd.MetadataStore, type_name: str):
    return store.get_artifacts_by_type(type_name)


def _producer_inputs(store: mlmd.MetadataStore, artifact_id: int) -> set[int]:
    """The input artifact ids of the execution that output `artifact_id`."""
    events = store.get_events_by_artifact_ids([artifact_id])
    execution_ids = {e.execution_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT}
    assert len(execution_ids) == 1
    return {e.artifact_id for e in store.get_events_by_execution_ids(list(execution_ids))
            if e.type == metadata_store_pb2.Event.INPUT}


@pytest.fixture(scope="module")
def unblessed_run(tmp_path_factory):
    """The same run with a gate no tiny model clears: the real Evaluator must refuse the blessing
    and the real Pusher then push nothing."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("unblessed_run")
    corpus = _corpus_slice(str(out / "corpus.txt"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = cli.main(["run", "--corpus", corpus, "--output_dir", str(out)] + TINY_RUN_FLAGS
                          + ["--min_masked_lm_accuracy", "0.99"])  # the last occurrence wins
    assert status == 0  # an unblessed model is an outcome, not an error
    return out, printed.getvalue()


def test_metadata_holds_every_artifact_linked_by_executions(corpus_run):
    store = _store(str(corpus_run / "metadata.sqlite"))
    for type_name in ("components.Vocabulary", "components.PretrainingRecords", "Examples", "Model", "ModelRun", "ModelEvaluation",
                      "ModelBlessing", "PushedModel"):
        assert len(_by_type(store, type_name)) == 1, type_name
    [examples] = _by_type(store, "Examples")
    [vocabulary] = _by_type(store, "components.Vocabulary")
    [model] = _by_type(store, "Model")
    [evaluation] = _by_type(store, "ModelEvaluation")
    [pushed] = _by_type(store, "PushedModel")
    # Which data and vocab made which model, with which metrics:
    assert {examples.id, vocabulary.id} <= _producer_inputs(store, model.id)
    assert {examples.id, model.id} <= _producer_inputs(store, evaluation.id)
    assert model.id in _producer_inputs(store, pushed.id)
    assert vocabulary.id in _producer_inputs(store, _by_type(store, "components.PretrainingRecords")[0].id)


def test_evaluation_has_finite_bert_metrics_and_model_is_pushed(corpus_run, capsys):
    from components.evaluator.results import read_eval_metrics

    store = _store(str(corpus_run / "metadata.sqlite"))
    [evaluation] = _by_type(store, "ModelEvaluation")
    metrics = read_eval_metrics(evaluation.uri)
    assert set(metrics) == {"masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy", "next_sentence_loss"}
    assert all(math.isfinite(v) for v in metrics.values())
    assert 0.0 <= metrics["masked_lm_accuracy"] <= 1.0
    assert 0.0 < metrics["masked_lm_loss"] < 10.0
    [blessing] = _by_type(store, "ModelBlessing")
    assert blessing.custom_properties["blessed"].int_value == 1
    pushed_dirs = os.listdir(corpus_run / "serving_model")
    assert len(pushed_dirs) == 1
    assert os.path.exists(corpus_run / "serving_model" / pushed_dirs[0] / "saved_model.pb")


def _eval_results(model_run_uri: str) -> dict[str, str]:
    with open(os.path.join(model_run_uri, "eval_results.txt")) as f:
        return dict(line.rstrip("\n").split(" = ", 1) for line in f)


def test_trainer_do_eval_equals_the_evaluator_on_a_split_with_a_partial_batch(corpus_run):
    import tensorflow as tf

    from components.evaluator.results import read_eval_metrics

    store = _store(str(corpus_run / "metadata.sqlite"))
    [examples] = _by_type(store, "Examples")
    eval_shards = tf.io.gfile.glob(os.path.join(examples.uri, "Split-eval", "*"))
    num_eval = sum(1 for _ in tf.data.TFRecordDataset(eval_shards, compression_type="GZIP"))
    batch = int(TINY_RUN_FLAGS[TINY_RUN_FLAGS.index("--eval_batch_size") + 1])
    assert num_eval % batch != 0, "the eval split must end in a partial batch for this test to mean anything"
    [model_run] = _by_type(store, "ModelRun")
    do_eval = _eval_results(model_run.uri)
    assert do_eval["eval_scope"] == "all" and int(do_eval["eval_examples"]) == num_eval
    [evaluation] = _by_type(store, "ModelEvaluation")
    evaluator = read_eval_metrics(evaluation.uri)
    for name, value in evaluator.items():
        # The original divides the MLM loss by sum(w) + 1e-5, TFMA by sum(w).
        assert float(do_eval[name]) == pytest.approx(value, rel=1e-4, abs=1e-5), name


def test_examples_have_train_and_eval_splits(corpus_run):
    store = _store(str(corpus_run / "metadata.sqlite"))
    [examples] = _by_type(store, "Examples")
    assert sorted(os.listdir(examples.uri)) == ["Split-eval", "Split-train"]


def test_run_from_existing_records_of_the_original_schema(independent_records, tiny_vocab_file, tmp_path):
    """--examples: records written by plain tf.train.Example (not this project's writer), no data generation."""
    flags = ["--examples", independent_records, "--vocab_file", tiny_vocab_file, "--output_dir", str(tmp_path),
             "--max_seq_length", "32", "--max_predictions_per_seq", "5", "--train_batch_size", "8",
             "--eval_batch_size", "8", "--num_train_steps", "6", "--num_warmup_steps", "1",
             "--save_checkpoints_steps", "6", "--iterations_per_loop", "3", "--max_eval_steps", "3",
             "--min_masked_lm_accuracy", "0.0", "--direct_num_workers", "1"]
    assert cli.main(["run"] + flags) == 0
    store = _store(str(tmp_path / "metadata.sqlite"))
    assert _by_type(store, "components.PretrainingRecords") == []
    [examples] = _by_type(store, "Examples")
    [model] = _by_type(store, "Model")
    [vocabulary] = _by_type(store, "components.Vocabulary")
    assert {examples.id, vocabulary.id} <= _producer_inputs(store, model.id)
    assert len(_by_type(store, "ModelEvaluation")) == 1


def test_a_model_below_the_gate_is_not_blessed_and_not_pushed(unblessed_run):
    out, printed = unblessed_run
    store = _store(str(out / "metadata.sqlite"))
    [blessing] = _by_type(store, "ModelBlessing")
    assert blessing.custom_properties["blessed"].int_value == 0
    [pushed] = _by_type(store, "PushedModel")
    assert pushed.custom_properties["pushed"].int_value == 0
    assert not os.path.exists(out / "serving_model") or os.listdir(out / "serving_model") == []
    assert "blessed:          no" in printed and "(not pushed: the model was not blessed)" in printed
