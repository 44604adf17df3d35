"""The training loop: resume after a kill, replica equivalence, NaN stop."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.bert.config import BertConfig
from components.bert.pretraining_model import BertPretrainingModel, ensure_built
from components.trainer import input_pipeline, training_loop
from components.trainer.run_fn import build_state
from conftest import TINY_PREDS, TINY_SEQ, write_records
from trainer_helpers import split_files, tiny_params


def _settings(params, steps=None):
    t = params.training
    return training_loop.LoopSettings(
        num_train_steps=steps or t.num_train_steps, steps_per_execution=t.iterations_per_loop,
        save_checkpoints_steps=t.save_checkpoints_steps, keep_checkpoint_max=t.keep_checkpoint_max,
        global_batch_size=t.train_batch_size)


def _dataset_fn(files, params, is_training=True):
    def make(context):
        batch = context.get_per_replica_batch_size(params.training.train_batch_size)
        ds = input_pipeline.make_dataset(files, batch, TINY_SEQ, TINY_PREDS, is_training=is_training,
                                         seed=params.training.seed, input_context=context)
        return ds if is_training else ds.repeat()
    return make


def _fresh_state(params, strategy=None, seed=7):
    keras.utils.set_random_seed(seed)
    return build_state(BertConfig.from_dict(params.bert_config), params, strategy or tf.distribute.get_strategy())


def _weights(model):
    return [v.numpy() for v in model.trainable_variables]


def test_kill_and_resume_matches_an_uninterrupted_run(independent_records, tmp_path, monkeypatch):
    files = split_files(independent_records, "train")
    params = tiny_params(str(tmp_path / "straight"), num_train_steps=4, save_checkpoints_steps=2,
                         iterations_per_loop=2)
    straight = _fresh_state(params)
    training_loop.train(straight, _dataset_fn(files, params), _settings(params), str(tmp_path / "straight"), None)

    # The "killed" run dies in the chunk after step 2, after the checkpoint at step 2.
    real_make = training_loop.make_train_chunk

    def dying_make(state, settings):
        chunk = real_make(state, settings)

        def run(iterator, num_steps):
            if int(state.optimizer.iterations.numpy()) >= 2:
                raise KeyboardInterrupt("simulated kill")
            return chunk(iterator, num_steps)
        return run

    monkeypatch.setattr(training_loop, "make_train_chunk", dying_make)
    killed = _fresh_state(params)
    with pytest.raises(KeyboardInterrupt):
        training_loop.train(killed, _dataset_fn(files, params), _settings(params), str(tmp_path / "resumed"), None)
    assert tf.train.latest_checkpoint(str(tmp_path / "resumed")).endswith("ckpt-2")
    monkeypatch.setattr(training_loop, "make_train_chunk", real_make)

    # A new process: new objects, different initial weights; it must resume at step 2.
    resumed = _fresh_state(params, seed=99)
    step = training_loop.train(resumed, _dataset_fn(files, params), _settings(params), str(tmp_path / "resumed"), None)
    assert step == 4
    for a, b in zip(_weights(straight.model), _weights(resumed.model)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(straight.optimizer.variables, resumed.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def _sgd_state(params, strategy=None, seed=7):
    """The tiny model with plain SGD: its step is -lr * gradient, so a gradient of the wrong
    scale shows (AdamW's update is nearly scale-invariant, and clipping to norm 1 hides it too)."""
    keras.utils.set_random_seed(seed)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = BertPretrainingModel(BertConfig.from_dict(params.bert_config))
        ensure_built(model)
        optimizer = keras.optimizers.SGD(0.5)
        optimizer.build(model.trainable_variables)
    return training_loop.TrainingState(model, optimizer, strategy)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd_unclipped"])
def test_two_replica_step_equals_single_device_step(optimizer, independent_records, tmp_path, two_cpu_replicas):
    """AdamW with clipping to norm 1, as the runs train; and SGD without clipping, which moves
    the weights by the summed gradient itself (a loss multiplied by the replica count fails it)."""
    files = split_files(independent_records, "train")
    # No warmup: as in the original, the warmup learning rate at step 0 is 0.
    params = tiny_params(str(tmp_path), num_train_steps=2, iterations_per_loop=2, save_checkpoints_steps=2,
                         num_warmup_steps=0)
    settings = _settings(params)
    make_state = _fresh_state
    if optimizer == "sgd_unclipped":
        settings = dataclasses.replace(settings, clip_norm=1e9)
        make_state = _sgd_state
    single = make_state(params)
    mirrored_strategy = two_cpu_replicas
    assert mirrored_strategy.num_replicas_in_sync == 2
    mirrored = make_state(params, mirrored_strategy)
    for a, b in zip(_weights(single.model), _weights(mirrored.model)):
        np.testing.assert_array_equal(a, b)

    training_loop.train(single, _dataset_fn(files, params, is_training=False), settings,
                        str(tmp_path / "single"), None)
    training_loop.train(mirrored, _dataset_fn(files, params, is_training=False), settings,
                        str(tmp_path / "mirrored"), None)
    assert int(mirrored.optimizer.iterations.numpy()) == 2  # one update per step, whatever the replica count
    moved = 0
    initial = make_state(params)
    for before, a, b in zip(_weights(initial.model), _weights(single.model), _weights(mirrored.model)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        moved += not np.allclose(before, a)
    assert moved > 10  # the steps really changed the weights


def test_nan_loss_stops_and_keeps_last_good_checkpoint(independent_records, tmp_path):
    files = split_files(independent_records, "train")
    params = tiny_params(str(tmp_path / "ckpt"), num_train_steps=2, save_checkpoints_steps=2, iterations_per_loop=2)
    state = _fresh_state(params)
    training_loop.train(state, _dataset_fn(files, params), _settings(params), str(tmp_path / "ckpt"), None)
    good = tf.train.latest_checkpoint(str(tmp_path / "ckpt"))

    # Records whose masked_lm_weights are NaN poison the loss.
    bad_dir = tmp_path / "bad"
    bad = []
    for record in tf.data.TFRecordDataset(files[0]).take(16):
        example = tf.train.Example.FromString(record.numpy())
        example.features.feature["masked_lm_weights"].float_list.value[0] = float("nan")
        bad.append(example.SerializeToString())
    os.makedirs(bad_dir)
    with tf.io.TFRecordWriter(str(bad_dir / "bad.tfrecord")) as w:
        for record in bad:
            w.write(record)
    with pytest.raises(training_loop.NonFiniteLossError, match="NaN or Inf.*ckpt-2"):
        training_loop.train(_fresh_state(params), _dataset_fn([str(bad_dir / "bad.tfrecord")], params),
                            _settings(params, steps=4), str(tmp_path / "ckpt"), None)
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")) == good


def test_corrupt_shard_is_named(independent_records, tmp_path):
    shard = tmp_path / "train" / "part-9.tfrecord"
    write_records(str(shard), 40, seed=5)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2] + b"\x00" * 17 + data[len(data) // 2 + 17:])  # corrupt in the middle
    files = [str(shard)]
    params = tiny_params(str(tmp_path / "ckpt"), num_train_steps=20, save_checkpoints_steps=20, iterations_per_loop=20)
    with pytest.raises(ValueError, match="part-9.tfrecord"):
        training_loop.train(_fresh_state(params), _dataset_fn(files, params), _settings(params),
                            str(tmp_path / "ckpt"), None, train_files=files)


def test_xla_compiled_step_matches_the_plain_step(independent_records, tmp_path):
    files = split_files(independent_records, "train")
    params = tiny_params(str(tmp_path), num_train_steps=2, iterations_per_loop=2, save_checkpoints_steps=2,
                         num_warmup_steps=0)
    plain = _fresh_state(params)
    compiled = _fresh_state(dataclasses.replace(params, training=dataclasses.replace(params.training, use_xla=True)))
    assert compiled.optimizer.jit_compile and not plain.optimizer.jit_compile
    training_loop.train(plain, _dataset_fn(files, params, is_training=False), _settings(params),
                        str(tmp_path / "plain"), None)
    xla_settings = dataclasses.replace(_settings(params), use_xla=True)
    training_loop.train(compiled, _dataset_fn(files, params, is_training=False), xla_settings,
                        str(tmp_path / "xla"), None)
    for a, b in zip(_weights(plain.model), _weights(compiled.model)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_steps_train_with_float32_master_weights(policy, independent_records, tmp_path):
    """bfloat16 (TPU/CPU) and float16 with loss scaling (GPU) both take finite steps."""
    files = split_files(independent_records, "train")
    params = tiny_params(str(tmp_path), num_train_steps=2, iterations_per_loop=2, save_checkpoints_steps=2,
                         num_warmup_steps=0)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        state = _fresh_state(params)
        if policy == "mixed_float16":
            assert isinstance(state.optimizer, keras.mixed_precision.LossScaleOptimizer)
        before = _weights(state.model)
        step = training_loop.train(state, _dataset_fn(files, params), _settings(params), str(tmp_path / "c"), None)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert step == 2
    after = _weights(state.model)
    assert all(w.dtype == np.float32 for w in after)
    assert all(np.isfinite(w).all() for w in after)
    assert sum(not np.allclose(a, b) for a, b in zip(before, after)) > 10


def _numpy_do_eval(model, files):
    """run_pretraining.py's eval metrics over every example of `files`, in numpy, from the
    model's outputs on all of them at once (one batch: no padding involved)."""
    [features] = list(input_pipeline.make_dataset(files, 48, TINY_SEQ, TINY_PREDS, is_training=False))
    outputs = model(features, training=False)
    mlm_log_probs = outputs["masked_lm_log_probs"].numpy()
    nsp_log_probs = outputs["next_sentence_log_probs"].numpy()
    ids, w = features["masked_lm_ids"].numpy(), features["masked_lm_weights"].numpy()
    labels = features["next_sentence_labels"].numpy()[:, 0]
    mlm_nll = -np.take_along_axis(mlm_log_probs, ids[..., None], -1)[..., 0]
    nsp_nll = -nsp_log_probs[np.arange(len(labels)), labels]
    return {
        "masked_lm_loss": np.sum(w * mlm_nll) / (np.sum(w) + 1e-5),
        "masked_lm_accuracy": np.sum(w * (mlm_log_probs.argmax(-1) == ids)) / np.sum(w),
        "next_sentence_loss": np.mean(nsp_nll),
        "next_sentence_accuracy": np.mean(nsp_log_probs.argmax(-1) == labels),
    }


@pytest.mark.parametrize("replicas", [1, 2])
def test_eval_scores_the_last_partial_batch_with_its_padding_weighted_out(replicas, independent_records, tmp_path,
                                                                         two_cpu_replicas):
    """48 eval examples in batches of 10: the fifth batch holds 8 real examples and 2 of padding.
    On 2 replicas of 5, the second replica's slice of it is 3 real rows and the 2 padded ones."""
    files = split_files(independent_records, "eval")
    params = tiny_params(str(tmp_path))
    state = _fresh_state(params, two_cpu_replicas if replicas == 2 else None)
    expected = _numpy_do_eval(state.model, files)
    dataset = input_pipeline.make_dataset(files, 10, TINY_SEQ, TINY_PREDS, is_training=False, pad_final_batch=True)
    shapes = [batch["input_ids"].shape[0] for batch in dataset]
    assert shapes == [10] * 5  # fixed shapes, the last batch padded
    metrics = training_loop.evaluate(state, dataset, max_eval_steps=100)
    assert metrics["eval_examples"] == 48 and metrics["eval_scope"] == "all"
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, rel=1e-5), name
    if replicas == 2:
        return  # the scope below does not depend on the strategy; each evaluate() traces anew
    cut = training_loop.evaluate(state, dataset, max_eval_steps=2)
    assert cut["eval_examples"] == 20 and cut["eval_scope"] == "first 2 batches"
    exact = training_loop.evaluate(state, dataset, max_eval_steps=5)  # the split is exactly 5 batches
    assert exact["eval_scope"] == "all" and exact["masked_lm_loss"] == pytest.approx(metrics["masked_lm_loss"])
