"""The whole pipeline with LocalDagRunner on a tiny slice, checked through ML-metadata.

The run itself is conftest's session fixture `corpus_run`, which the run-spec test compares against."""
from __future__ import annotations

import math
import os

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2

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
