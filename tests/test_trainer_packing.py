"""Throughput mode's packing: a packed row gives every instance the outputs, loss and gradient
it has unpacked (tiny BERT), and the packer loses or repeats no instance."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.bert.config import BertConfig
from components.bert.pretraining_model import BertPretrainingModel, ensure_built
from components.trainer import distributed_loss, input_pipeline, packing, training_loop
from components.trainer.run_fn import build_state
from conftest import TINY_PREDS, TINY_SEQ, TINY_VOCAB_SIZE, tiny_bert_config
from trainer_helpers import split_files, tiny_params

S, P = TINY_SEQ, TINY_PREDS


def _instance(rng, length):
    """One masked instance of `length` real tokens ([CLS] A [SEP] B [SEP]), padded to S."""
    ids = np.zeros(S, np.int32)
    ids[:length] = rng.integers(5, TINY_VOCAB_SIZE, length)
    half = max(2, length // 2)
    ids[0], ids[half - 1], ids[length - 1] = 2, 3, 3
    segments = np.zeros(S, np.int32)
    segments[half:length] = 1
    candidates = [j for j in range(length) if ids[j] not in (2, 3)]
    n = min(P, max(1, round(length * 0.15)), len(candidates))
    positions = np.zeros(P, np.int32)
    positions[:n] = np.sort(rng.choice(candidates, n, replace=False))
    labels = np.zeros(P, np.int32)
    labels[:n] = ids[positions[:n]]
    ids[positions[:n]] = 4
    weights = np.zeros(P, np.float32)
    weights[:n] = 1.0
    return {"input_ids": ids, "input_mask": (np.arange(S) < length).astype(np.int32), "segment_ids": segments,
            "masked_lm_positions": positions, "masked_lm_ids": labels, "masked_lm_weights": weights,
            "next_sentence_labels": np.array([rng.integers(0, 2)], np.int32)}


@pytest.fixture(scope="module")
def instances():
    rng = np.random.default_rng(0)
    lengths = [9, 14, 32, 6, 20, 11, 25, 8, 30, 12, 7, 16]
    return [_instance(rng, n) for n in lengths]


def _stack(items):
    return {k: tf.constant(np.stack([x[k] for x in items])) for k in items[0]}


def _pack_all(instances, open_rows=3):
    ds = tf.data.Dataset.from_tensor_slices(_stack(instances))
    return [{k: v.numpy() for k, v in row.items()} for row in packing.pack(ds, S, P, open_rows=open_rows)]


def _locate(rows, instance):
    """(row, slot, start, length) of `instance` in the packed rows (by its tokens)."""
    length = int(instance["input_mask"].sum())
    found = []
    for r, row in enumerate(rows):
        for slot in range(packing.DEFAULT_MAX_SEQUENCES_PER_ROW):
            if row[packing.NEXT_SENTENCE_WEIGHTS][slot] == 0:
                continue
            start = int(row["cls_positions"][slot])
            if (np.sum(row["packed_sequence_ids"] == slot + 1) == length
                    and np.array_equal(row["input_ids"][start:start + length], instance["input_ids"][:length])):
                found.append((r, slot, start, length))
    assert len(found) == 1, found
    return found[0]


def test_every_instance_lands_once_within_the_row_limits(instances):
    rows = _pack_all(instances)
    real_tokens = sum(int(x["input_mask"].sum()) for x in instances)
    assert sum(int(r["input_mask"].sum()) for r in rows) == real_tokens
    assert len(rows) < len(instances)  # some rows hold several instances
    for row in rows:
        k = int(row[packing.NEXT_SENTENCE_WEIGHTS].sum())
        assert 1 <= k <= packing.DEFAULT_MAX_SEQUENCES_PER_ROW
        assert row["masked_lm_weights"].sum() <= packing.row_predictions(P, packing.DEFAULT_MAX_SEQUENCES_PER_ROW)
        assert set(np.unique(row["packed_sequence_ids"])) <= set(range(k + 1))
    for x in instances:
        r, slot, start, length = _locate(rows, x)
        row = rows[r]
        np.testing.assert_array_equal(row["position_ids"][start:start + length], np.arange(length))
        np.testing.assert_array_equal(row["segment_ids"][start:start + length], x["segment_ids"][:length])
        assert row["next_sentence_labels"][slot] == x["next_sentence_labels"][0]
        n = int(x["masked_lm_weights"].sum())
        inside = (row["masked_lm_weights"] > 0) & (row["masked_lm_positions"] >= start) & (
            row["masked_lm_positions"] < start + length)
        np.testing.assert_array_equal(row["masked_lm_positions"][inside] - start, x["masked_lm_positions"][:n])
        np.testing.assert_array_equal(row["masked_lm_ids"][inside], x["masked_lm_ids"][:n])


def _model(seed=5):
    keras.utils.set_random_seed(seed)
    model = BertPretrainingModel(BertConfig.from_dict(tiny_bert_config()))
    ensure_built(model)
    return model


def test_packed_rows_give_each_instance_its_unpacked_outputs_loss_and_gradient(instances):
    model = _model()
    rows = _pack_all(instances)
    unpacked, packed = _stack(instances), {k: tf.constant(np.stack([r[k] for r in rows])) for k in rows[0]}
    out_u, out_p = model(unpacked, training=False), model(packed, training=False)
    for i, x in enumerate(instances):
        r, slot, start, length = _locate(rows, x)
        np.testing.assert_allclose(out_p["sequence_output"][r, start:start + length],
                                   out_u["sequence_output"][i, :length], atol=2e-5)
        np.testing.assert_allclose(out_p["pooled_output"][r, slot], out_u["pooled_output"][i], atol=2e-5)
        np.testing.assert_allclose(out_p["next_sentence_log_probs"][r, slot], out_u["next_sentence_log_probs"][i],
                                   atol=2e-5)
        n = int(x["masked_lm_weights"].sum())
        row = rows[r]
        inside = (row["masked_lm_weights"] > 0) & (row["masked_lm_positions"] >= start) & (
            row["masked_lm_positions"] < start + length)
        np.testing.assert_allclose(out_p["masked_lm_log_probs"][r].numpy()[inside],
                                   out_u["masked_lm_log_probs"][i, :n], atol=2e-5)

    def loss_and_grads(features, examples):
        with tf.GradientTape() as tape:
            terms = distributed_loss.replica_loss_terms(model(features, training=True), features)
            loss = distributed_loss.replica_loss(terms, terms["mlm_weight_sum"], examples)
        return terms, loss, tape.gradient(loss, model.trainable_variables)

    terms_u, loss_u, grads_u = loss_and_grads(unpacked, tf.constant(float(len(instances))))
    terms_p, loss_p, grads_p = loss_and_grads(packed, tf.reduce_sum(packed[packing.NEXT_SENTENCE_WEIGHTS]))
    for name in training_loop.TERM_NAMES:
        np.testing.assert_allclose(terms_p[name], terms_u[name], rtol=1e-5, atol=1e-5)
    assert float(terms_p["examples"]) == len(instances)
    np.testing.assert_allclose(loss_p, loss_u, rtol=1e-5)
    for gp, gu in zip(grads_p, grads_u):
        np.testing.assert_allclose(tf.convert_to_tensor(gp), tf.convert_to_tensor(gu), rtol=1e-4, atol=1e-6)


def test_packed_training_reads_records_and_counts_instances(independent_records, tmp_path):
    files = split_files(independent_records, "train")
    params = tiny_params(str(tmp_path / "ckpt"), num_train_steps=4, save_checkpoints_steps=4,
                         iterations_per_loop=2, throughput_mode=True)
    keras.utils.set_random_seed(3)
    state = build_state(BertConfig.from_dict(params.bert_config), params, tf.distribute.get_strategy())
    ds = input_pipeline.make_dataset(files, 8, S, P, is_training=True, seed=1, pack_sequences=3)
    batch = next(iter(ds))
    assert batch["masked_lm_positions"].shape == [8, packing.row_predictions(P, 3)]
    assert float(tf.reduce_sum(batch[packing.NEXT_SENTENCE_WEIGHTS])) >= 8

    settings = training_loop.LoopSettings(num_train_steps=4, steps_per_execution=2, save_checkpoints_steps=4,
                                          keep_checkpoint_max=1, global_batch_size=8, progress_interval_seconds=0)
    step = training_loop.train(state, lambda ctx: input_pipeline.make_dataset(
        files, 8, S, P, is_training=True, seed=1, input_context=ctx, pack_sequences=3),
        settings, str(tmp_path / "ckpt"), None)
    assert step == 4


def _sgd_state(seed=7):
    """Plain SGD: its step is -lr * gradient, so a loss of the wrong scale shows."""
    keras.utils.set_random_seed(seed)
    strategy = tf.distribute.get_strategy()
    model = BertPretrainingModel(BertConfig.from_dict(tiny_bert_config()))
    ensure_built(model)
    optimizer = keras.optimizers.SGD(0.5)
    optimizer.build(model.trainable_variables)
    return training_loop.TrainingState(model, optimizer, strategy)


def test_a_training_step_on_packed_rows_equals_the_step_on_the_instances(instances):
    """The loop's own step (make_train_chunk): NSP averages over instances, not rows."""
    rows = _pack_all(instances)
    batches = {"unpacked": _stack(instances), "packed": {k: tf.constant(np.stack([r[k] for r in rows])) for k in rows[0]}}
    weights = {}
    for name, batch in batches.items():
        state = _sgd_state()
        settings = training_loop.LoopSettings(num_train_steps=1, steps_per_execution=1, save_checkpoints_steps=1,
                                              keep_checkpoint_max=1, global_batch_size=len(batch["input_ids"]),
                                              clip_norm=1e9)
        iterator = iter(state.strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).repeat()))
        sums, _ = training_loop.make_train_chunk(state, settings)(iterator, tf.constant(1))
        assert float(sums["examples"]) == len(instances)
        weights[name] = [v.numpy() for v in state.model.trainable_variables]
    for a, b in zip(weights["packed"], weights["unpacked"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_two_input_pipelines_share_packed_rows_as_one_pipeline_does(independent_records):
    files = split_files(independent_records, "train")
    one = next(iter(input_pipeline.make_dataset(files, 8, S, P, is_training=True, seed=1, pack_sequences=3)))
    halves = [next(iter(input_pipeline.make_dataset(
        files, 4, S, P, is_training=True, seed=1, pack_sequences=3,
        input_context=tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i,
                                                 num_replicas_in_sync=2)))) for i in range(2)]
    for name in one:
        np.testing.assert_array_equal(one[name].numpy(), np.concatenate([h[name].numpy() for h in halves]))
