"""Warm start from a base model (components/trainer/warm_start.py) and the run-time
checkpoint directory (components/trainer/component.py), on tiny records."""
from __future__ import annotations

import inspect
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components.bert.config import BertConfig
from components.trainer import run_fn, warm_start
from components.trainer.component import run_checkpoint_dir
from components.trainer.run_fn import build_state, pretrain
from components.trainer import strategy as strategy_lib
from trainer_helpers import split_files, tiny_params


@pytest.fixture(scope="module")
def base(independent_records, tiny_vocab_file, tmp_path_factory):
    """A model trained 6 steps: its Format-Serving dir (with Checkpoint/ beside it)."""
    out = tmp_path_factory.mktemp("base")
    serving = str(out / "model" / "Format-Serving")
    pretrain(tiny_params(str(out / "ckpt"), vocab_file=tiny_vocab_file), split_files(independent_records, "train"),
             split_files(independent_records, "eval"), serving, str(out / "run"))
    return serving


def _successor(records, vocab_file, out, base_model, **changes):
    bert_config = changes.pop("bert_config", None)
    params = tiny_params(str(out / "ckpt"), vocab_file=vocab_file, bert_config=bert_config, **changes)
    pretrain(params, split_files(records, "train"), split_files(records, "eval"), str(out / "model" / "Format-Serving"),
             str(out / "run"), base_model=base_model)
    with open(out / "model" / "Checkpoint" / "warm_start.json") as f:
        return json.load(f)


def test_model_carries_a_checkpoint_and_what_a_successor_must_agree_with(base, tiny_vocab_file):
    trained = warm_start.load_trained_state(base)
    assert trained.global_step == trained.total_steps == 6
    assert trained.warm_start == "none" and trained.base_model is None
    assert trained.vocab_sha256 == warm_start.file_sha256(tiny_vocab_file)
    assert tf.train.latest_checkpoint(os.path.join(os.path.dirname(base), "Checkpoint")) is None  # written, not managed
    assert tf.io.gfile.glob(os.path.join(os.path.dirname(base), "Checkpoint", "ckpt.index"))


def test_restore_gives_the_base_weights_and_slots_and_restarts_the_step(base, tiny_vocab_file):
    params = tiny_params("/unused", vocab_file=tiny_vocab_file)
    bert_config = BertConfig.from_dict(warm_start.load_trained_state(base).bert_config)
    state = build_state(bert_config, params, strategy_lib.select_strategy(None))
    before = [v.numpy().copy() for v in state.model.trainable_variables]
    warm_start.restore(state, base, warm_start.WEIGHTS_AND_OPTIMIZER)
    reader = tf.train.load_checkpoint(os.path.join(os.path.dirname(base), "Checkpoint", "ckpt"))
    assert int(reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")) == 6
    assert int(state.optimizer.iterations.numpy()) == 0  # fresh warm-up over the new steps
    after = [v.numpy() for v in state.model.trainable_variables]
    assert any(not np.allclose(b, a) for b, a in zip(before, after))
    slots = [v for v in state.optimizer.variables if "adam_m" in v.name or "m/" in v.name]
    assert slots and any(np.abs(v.numpy()).sum() > 0 for v in slots)


def _base_weights(base: str, vocab_file: str) -> list[np.ndarray]:
    """The base model's trained weights, read from its Checkpoint/ with TensorFlow's own reader."""
    bert_config = BertConfig.from_dict(warm_start.load_trained_state(base).bert_config)
    state = build_state(bert_config, tiny_params("/unused", vocab_file=vocab_file),
                        strategy_lib.select_strategy(None))
    initial = [v.numpy().copy() for v in state.model.trainable_variables]
    tf.train.Checkpoint(model=state.model).read(
        os.path.join(os.path.dirname(base), "Checkpoint", "ckpt")).expect_partial().assert_existing_objects_matched()
    trained = [v.numpy() for v in state.model.trainable_variables]
    assert any(not np.array_equal(a, b) for a, b in zip(initial, trained))  # 6 steps moved them
    return trained


def test_successor_starts_from_the_base_weights_records_its_base_and_counts_all_steps(
        base, independent_records, tiny_vocab_file, tmp_path, monkeypatch):
    """pretrain's own warm start, observed where the training loop runs it: just before the
    first step, the weights are the base's and the step is 0."""
    real_train = run_fn.train
    seen = {}

    def train_observed(state, *args, **kwargs):
        bound = inspect.signature(real_train).bind(state, *args, **kwargs)
        starter = bound.arguments["warm_start"]

        def start_then_look(model):
            starter(model)
            seen["weights"] = [v.numpy().copy() for v in model.trainable_variables]
            seen["step"] = int(state.optimizer.iterations.numpy())
        bound.arguments["warm_start"] = start_then_look
        return real_train(*bound.args, **bound.kwargs)

    monkeypatch.setattr(run_fn, "train", train_observed)
    info = _successor(independent_records, tiny_vocab_file, tmp_path, base)
    expected = _base_weights(base, tiny_vocab_file)
    assert len(seen["weights"]) == len(expected)
    for restored, from_base in zip(seen["weights"], expected):
        np.testing.assert_array_equal(restored, from_base)
    assert seen["step"] == 0
    assert info["warm_start"] == warm_start.WEIGHTS_AND_OPTIMIZER
    assert info["base_model"] == base
    assert info["global_step"] == 6 and info["total_steps"] == 12


def test_bias_corrected_optimizer_restores_weights_only(base, independent_records, tiny_vocab_file, tmp_path):
    info = _successor(independent_records, tiny_vocab_file, tmp_path, base, optimizer_type="lamb")
    assert info["warm_start"] == warm_start.WEIGHTS


def test_other_vocabulary_is_refused_naming_both(base, independent_records, tiny_vocab_file, tmp_path):
    other = tmp_path / "other_vocab.txt"
    other.write_text(open(tiny_vocab_file).read().replace("tok1\n", "tokX\n"))
    with pytest.raises(ValueError, match=f"vocabulary {tiny_vocab_file}.*this run has {other}"):
        _successor(independent_records, str(other), tmp_path, base)
    assert not (tmp_path / "model" / "Format-Serving").exists()  # nothing trained, nothing exported


def test_other_architecture_is_refused_naming_the_difference(base, independent_records, tiny_vocab_file, tmp_path):
    from conftest import tiny_bert_config

    with pytest.raises(ValueError, match="num_hidden_layers 2 vs 1"):
        _successor(independent_records, tiny_vocab_file, tmp_path, base,
                   bert_config=tiny_bert_config(num_hidden_layers=1))


def test_other_max_seq_length_is_refused():
    def state(seq):
        return warm_start.TrainedState(bert_config={}, max_seq_length=seq, max_predictions_per_seq=5,
                                       vocab_file="v", vocab_sha256="s", optimizer_type="adamw",
                                       adam_bias_correction=None, global_step=0, total_steps=0)
    with pytest.raises(ValueError, match="--max_seq_length 32, this run has 64"):
        warm_start.plan_warm_start(state(32), "base", state(64))


def test_base_model_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(ValueError, match="has no Checkpoint/warm_start.json"):
        warm_start.load_trained_state(str(tmp_path / "model" / "Format-Serving"))


def _examples(span: int, fingerprint: str, uri: str):
    examples = standard_artifacts.Examples()
    examples.uri, examples.span = uri, span
    examples.set_string_custom_property("input_fingerprint", fingerprint)
    return examples


def _model(model_id: int):
    model = standard_artifacts.Model()
    model.id, model.uri = model_id, f"/models/{model_id}"
    return model


def test_checkpoint_dir_is_kept_for_the_same_inputs_and_new_for_new_data_or_base():
    base_dir = "/root/checkpoints/abc"
    first = run_checkpoint_dir(base_dir, [_examples(1, "f1", "/ex/1")], [_model(7)])
    # A rerun after a kill: ImportExampleGen made a new artifact (uri) of the same files.
    assert run_checkpoint_dir(base_dir, [_examples(1, "f1", "/ex/2")], [_model(7)]) == first
    assert first.startswith(base_dir + "/run-")
    assert run_checkpoint_dir(base_dir, [_examples(2, "f2", "/ex/3")], [_model(7)]) != first
    assert run_checkpoint_dir(base_dir, [_examples(1, "f1", "/ex/1")], [_model(8)]) != first
    assert run_checkpoint_dir(base_dir, [_examples(1, "f1", "/ex/1")], []) != first
