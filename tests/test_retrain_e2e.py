"""Retraining end to end: spans arrive one by one and `bertpipe retrain` runs the real pipeline
(LocalDagRunner, ML-metadata in SQLite, TFMA) each time, checked through ML-metadata."""
from __future__ import annotations

import json
import math
import os
import shutil

import ml_metadata as mlmd
import numpy as np
import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2

from pipeline import cli, retrain

pytestmark = pytest.mark.e2e

# Tiny: ~15 KB per span, 8 steps. The drop tolerance keeps run 2's blessing independent of
# how much 8 steps on a new span move the accuracy; the sabotaged run is held to no drop.
RETRAIN_FLAGS = [
    "--vocab_size", "400", "--max_seq_length", "32", "--max_predictions_per_seq", "5", "--dupe_factor", "1",
    "--num_shards", "1", "--eval_fraction", "0.2", "--train_batch_size", "8", "--eval_batch_size", "8",
    "--num_train_steps", "8", "--num_warmup_steps", "2", "--save_checkpoints_steps", "8",
    "--iterations_per_loop", "4", "--max_eval_steps", "3", "--learning_rate", "1e-3",
    "--min_masked_lm_accuracy", "0.0", "--max_masked_lm_accuracy_drop", "0.05", "--direct_num_workers", "1",
]


def _store(metadata_path: str) -> mlmd.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def _inputs(store, artifact_id: int) -> dict[str, set[int]]:
    """{input key: artifact ids} of the execution that output `artifact_id`."""
    [execution_id] = {e.execution_id for e in store.get_events_by_artifact_ids([artifact_id])
                      if e.type == metadata_store_pb2.Event.OUTPUT}
    keys: dict[str, set[int]] = {}
    for event in store.get_events_by_execution_ids([execution_id]):
        if event.type == metadata_store_pb2.Event.INPUT:
            keys.setdefault(event.path.steps[0].key, set()).add(event.artifact_id)
    return keys


def _models(store):
    return sorted(store.get_artifacts_by_type("Model"), key=lambda a: a.id)


class Retraining:
    """A corpus directory that grows span by span, and `bertpipe retrain` on it."""

    def __init__(self, root, spans: list[str]):
        self.root, self.spans = root, spans
        self.corpus = root / "corpus"
        self.output = root / "out"
        self.pattern = str(self.corpus / "span-{SPAN}" / "*.txt")

    def arrive(self, n: int) -> None:
        shutil.copytree(self.spans[n - 1], self.corpus / f"span-{n}")

    def retrain(self, *extra: str) -> int:
        return cli.main(["retrain", "--corpus", self.pattern, "--output_dir", str(self.output)]
                        + RETRAIN_FLAGS + list(extra))

    @property
    def store(self):
        return _store(str(self.output / "metadata.sqlite"))

    def pushed_versions(self) -> list[str]:
        return sorted(os.listdir(self.output / "serving_model"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus_spans):
    """Run 1 on span 1, a retrain with nothing new, run 2 after span 2, a sabotaged run 3 after
    span 3, then a run with another vocabulary; each step's exit code and what the serving
    directory held after it."""
    r = Retraining(tmp_path_factory.mktemp("retrain"), corpus_spans)
    out = {}
    r.arrive(1)
    out["first"] = r.retrain()
    out["pushed_after_first"] = r.pushed_versions()
    executions = len(r.store.get_executions())
    out["nothing_new"] = r.retrain()
    out["executions_added_by_nothing_new"] = len(r.store.get_executions()) - executions
    r.arrive(2)
    out["second"] = r.retrain()
    out["pushed_after_second"] = r.pushed_versions()
    r.arrive(3)
    out["sabotaged"] = r.retrain("--learning_rate", "3.0", "--num_warmup_steps", "0",
                                 "--max_masked_lm_accuracy_drop", "0")
    out["pushed_after_sabotage"] = r.pushed_versions()
    models = len(_models(r.store))
    # Another vocabulary (another size) than the serving model's: the warm start is refused.
    out["other_vocabulary"] = r.retrain("--vocab_size", "350")
    out["models_added_by_other_vocabulary"] = len(_models(r.store)) - models
    out["pushed_after_other_vocabulary"] = r.pushed_versions()
    return r, out


def test_first_run_trains_from_scratch_is_blessed_on_values_and_pushed(runs):
    r, out = runs
    assert out["first"] == retrain.EXIT_OK
    assert len(out["pushed_after_first"]) == 1
    store = r.store
    first = _models(store)[0]
    assert first.custom_properties["span"].int_value == 1
    assert first.custom_properties["warm_start"].string_value == "none"
    assert "base_model" not in _inputs(store, first.id)
    # ImportExampleGen records the span it picked on the Examples.
    [examples] = [a for a in store.get_artifacts_by_type("Examples") if a.custom_properties["span"].int_value == 1]
    assert examples.id in _inputs(store, first.id)["examples"]


def test_retrain_with_no_new_span_runs_nothing(runs, capsys):
    _, out = runs
    assert out["nothing_new"] == retrain.EXIT_OK
    assert out["executions_added_by_nothing_new"] == 0


def test_second_run_warm_starts_from_the_first_and_is_compared_with_it(runs):
    r, out = runs
    assert out["second"] == retrain.EXIT_OK
    store = r.store
    first, second = _models(store)[:2]
    assert second.custom_properties["span"].int_value == 2
    assert second.custom_properties["base_model_id"].int_value == first.id
    assert second.custom_properties["warm_start"].string_value == "weights_and_optimizer"
    assert second.custom_properties["total_train_steps"].int_value == 16
    assert _inputs(store, second.id)["base_model"] == {first.id}
    [evaluation] = [e for e in store.get_artifacts_by_type("ModelEvaluation")
                    if _inputs(store, e.id)["model"] == {second.id}]
    assert _inputs(store, evaluation.id)["baseline_model"] == {first.id}
    from components.evaluator.results import read_baseline_metrics, read_eval_metrics
    baseline, candidate = read_baseline_metrics(evaluation.uri), read_eval_metrics(evaluation.uri)
    assert baseline is not None and all(math.isfinite(v) for v in baseline.values())
    assert baseline != candidate
    # Both pushed versions stay: a push never replaces an earlier one.
    assert len(out["pushed_after_second"]) == 2
    assert set(out["pushed_after_first"]) < set(out["pushed_after_second"])


def _masked_lm_loss(serve, serialized: list[bytes]) -> float:
    """Mean NLL of the masked tokens, weighted as the original (serving_default's log-probs)."""
    log_probs = serve(examples=tf.constant(serialized))["masked_lm"].numpy()  # [B, P, V]
    parsed = [tf.train.Example.FromString(s).features.feature for s in serialized]
    ids = np.array([f["masked_lm_ids"].int64_list.value for f in parsed])  # [B, P]
    weights = np.array([f["masked_lm_weights"].float_list.value for f in parsed])  # [B, P]
    nll = -np.take_along_axis(log_probs, ids[..., None], axis=-1)[..., 0]
    return float((nll * weights).sum() / weights.sum())


def _first_logged(store, model_id: int, name: str) -> float:
    """The first `train/<name>` TensorBoard scalar of the Trainer run that made `model_id`."""
    [run_id] = {a for a in _outputs_of_producer(store, model_id) if a != model_id}
    [model_run] = store.get_artifacts_by_id([run_id])
    events = sorted(tf.io.gfile.glob(os.path.join(model_run.uri, "train", "events.*")))
    values = [(e.step, float(tf.make_ndarray(v.tensor))) for path in events
              for e in tf.compat.v1.train.summary_iterator(path) for v in e.summary.value if v.tag == f"train/{name}"]
    return min(values)[1]


def _outputs_of_producer(store, artifact_id: int) -> set[int]:
    [execution_id] = {e.execution_id for e in store.get_events_by_artifact_ids([artifact_id])
                      if e.type == metadata_store_pb2.Event.OUTPUT}
    return {e.artifact_id for e in store.get_events_by_execution_ids([execution_id])
            if e.type == metadata_store_pb2.Event.OUTPUT}


def test_warm_start_begins_below_a_from_scratch_loss_on_the_same_batch(runs, tmp_path):
    """Run 2 starts from run 1's weights: on span 2's training examples they score a lower
    masked-LM loss than the freshly initialised weights a from-scratch run starts with, and
    run 2's first logged training loss is below that from-scratch loss too."""
    from components.bert.pretraining_model import BertPretrainingModel, ensure_built
    from components.trainer.export import export_saved_model
    from components.bert.config import BertConfig
    from components.trainer.input_pipeline import compression_of

    r, _ = runs
    store = r.store
    first, second = _models(store)[:2]
    [examples_id] = _inputs(store, second.id)["examples"]
    [examples] = store.get_artifacts_by_id([examples_id])
    files = sorted(tf.io.gfile.glob(os.path.join(examples.uri, "Split-train", "*")))
    batch = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type=compression_of(files[0])).take(8)]
    warm = tf.saved_model.load(os.path.join(first.uri, "Format-Serving")).signatures["serving_default"]
    config = json.load(open(os.path.join(first.uri, "Checkpoint", "warm_start.json")))
    fresh = BertPretrainingModel(BertConfig.from_dict(config["bert_config"]))
    ensure_built(fresh)
    fresh_dir = export_saved_model(fresh, BertConfig.from_dict(config["bert_config"]), None, str(tmp_path / "fresh"),
                                   32, 5)
    scratch = tf.saved_model.load(fresh_dir).signatures["serving_default"]
    scratch_loss = _masked_lm_loss(scratch, batch)
    assert _masked_lm_loss(warm, batch) < scratch_loss - 0.1
    assert _first_logged(store, second.id, "masked_lm_loss") < scratch_loss - 0.1
    assert _first_logged(store, second.id, "masked_lm_loss") < _first_logged(store, first.id, "masked_lm_loss")


def test_sabotaged_candidate_is_not_blessed_nor_pushed(runs):
    r, out = runs
    assert out["sabotaged"] == retrain.EXIT_NOT_BLESSED
    assert out["pushed_after_sabotage"] == out["pushed_after_second"]
    store = r.store
    third = _models(store)[-1]
    assert third.custom_properties["span"].int_value == 3
    [blessing] = [b for b in store.get_artifacts_by_type("ModelBlessing")
                  if b.custom_properties["current_model_id"].int_value == third.id]
    assert blessing.custom_properties["blessed"].int_value == 0
    # The next retrain still starts from the last blessed model (run 2's).
    assert retrain.latest_blessed_model(str(r.output / "metadata.sqlite"), "bert-pretraining").id == \
        _models(store)[1].id


def test_other_vocabulary_than_the_base_model_is_refused_before_training(runs):
    """Exit 2 (bad input; the one-line message naming both vocabularies is checked in
    tests/test_trainer_warm_start.py), no model published, nothing pushed."""
    _, out = runs
    assert out["other_vocabulary"] == retrain.EXIT_BAD_INPUT
    assert out["models_added_by_other_vocabulary"] == 0
    assert out["pushed_after_other_vocabulary"] == out["pushed_after_second"]
