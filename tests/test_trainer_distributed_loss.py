"""The trainer's own loss and step (distributed_loss, training_loop.make_train_chunk) against a
numpy statement of run_pretraining.py's: get_masked_lm_output and get_next_sentence_output."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.bert.config import BertConfig
from components.bert.pretraining_model import BertPretrainingModel, ensure_built
from components.trainer import distributed_loss, input_pipeline, training_loop
from conftest import TINY_PREDS, TINY_SEQ, tiny_bert_config
from trainer_helpers import split_files

B, P, V = 6, 4, 10


def numpy_pretraining_loss(mlm_log_probs, ids, weights, nsp_log_probs, labels):
    """run_pretraining.py on one device: (total, masked_lm_loss, next_sentence_loss).

    masked_lm_loss = sum(w * nll) / (sum(w) + 1e-5) over the batch's predictions;
    next_sentence_loss = mean(nll) over its examples; total = their sum.
    """
    mlm_nll = -np.take_along_axis(mlm_log_probs, ids[..., None], -1)[..., 0]
    mlm = np.sum(weights * mlm_nll) / (np.sum(weights) + 1e-5)
    nsp = np.mean(-nsp_log_probs[np.arange(len(labels)), labels])
    return mlm + nsp, mlm, nsp


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return (x - np.log(np.exp(x).sum(-1, keepdims=True))).astype(np.float32)


def _random_batch(seed=0):
    rng = np.random.default_rng(seed)
    outputs = {"masked_lm_log_probs": _log_softmax(rng.normal(size=(B, P, V)) * 2),
               "next_sentence_log_probs": _log_softmax(rng.normal(size=(B, 2)))}
    weights = (rng.random((B, P)) < 0.6).astype(np.float32)
    weights[0, 0] = weights[5, 0] = 1.0
    features = {"masked_lm_ids": rng.integers(0, V, (B, P)).astype(np.int32), "masked_lm_weights": weights,
                "next_sentence_labels": rng.integers(0, 2, (B, 1)).astype(np.int32)}
    return outputs, features


@pytest.mark.parametrize("slices", [[(0, 6)], [(0, 3), (3, 6)], [(0, 1), (1, 4), (4, 6)]])
def test_replica_losses_sum_to_the_original_loss_of_the_whole_batch(slices):
    """Each replica's share (its sums over the GLOBAL weight sum and batch size) adds up to the
    original loss of the global batch, however the batch is cut."""
    outputs, features = _random_batch()
    total, mlm, nsp = numpy_pretraining_loss(outputs["masked_lm_log_probs"], features["masked_lm_ids"],
                                             features["masked_lm_weights"], outputs["next_sentence_log_probs"],
                                             features["next_sentence_labels"][:, 0])
    global_weight_sum = tf.constant(features["masked_lm_weights"].sum())
    shares, sums = [], None
    for start, end in slices:
        part = lambda d: {k: v[start:end] for k, v in d.items()}  # noqa: E731
        terms = distributed_loss.replica_loss_terms(part(outputs), part(features))
        shares.append(float(distributed_loss.replica_loss(terms, global_weight_sum, tf.constant(float(B)))))
        sums = terms if sums is None else {k: sums[k] + terms[k] for k in terms}
    assert sum(shares) == pytest.approx(total, rel=1e-6)
    metrics = distributed_loss.metrics_from_sums(sums)
    assert float(metrics["masked_lm_loss"]) == pytest.approx(mlm, rel=1e-6)
    assert float(metrics["next_sentence_loss"]) == pytest.approx(nsp, rel=1e-6)
    assert float(metrics["loss"]) == pytest.approx(total, rel=1e-6)


def _tiny_model_and_batch(independent_records):
    keras.utils.set_random_seed(3)
    model = BertPretrainingModel(BertConfig.from_dict(tiny_bert_config()))
    ensure_built(model)
    [features] = list(input_pipeline.make_dataset(split_files(independent_records, "train"), 8, TINY_SEQ,
                                                  TINY_PREDS, is_training=False).take(1))
    return model, features


def _statement_loss(model, features):
    """The original loss of the model on `features`, written out with one-hot products (not the
    trainer's gather), for the gradient the trainer's step must take."""
    outputs = model(features, training=True)
    ids = tf.one_hot(features["masked_lm_ids"], outputs["masked_lm_log_probs"].shape[-1])
    weights = features["masked_lm_weights"]
    mlm_nll = -tf.reduce_sum(outputs["masked_lm_log_probs"] * ids, -1)
    mlm = tf.reduce_sum(weights * mlm_nll) / (tf.reduce_sum(weights) + 1e-5)
    nsp_nll = -tf.reduce_sum(outputs["next_sentence_log_probs"] * tf.one_hot(features["next_sentence_labels"][:, 0], 2), -1)
    return mlm + tf.reduce_mean(nsp_nll), outputs


@pytest.mark.parametrize("clipped", [False, True])
def test_one_training_step_is_gradient_descent_on_the_original_loss(clipped, independent_records):
    """With plain SGD the step shows the gradient itself (Adam would hide its scale): the trainer's
    step moves the weights by -lr * g (unclipped) or -lr * g * clip_norm / |g| (clipped), g the
    gradient of run_pretraining.py's loss, and reports that loss's value."""
    model, features = _tiny_model_and_batch(independent_records)
    with tf.GradientTape() as tape:
        expected_loss, outputs = _statement_loss(model, features)
    grads = tape.gradient(expected_loss, model.trainable_variables)
    norm = float(tf.linalg.global_norm(grads))
    clip_norm = norm / 4 if clipped else norm * 100
    scale = 0.25 if clipped else 1.0
    np_total, _, _ = numpy_pretraining_loss(
        outputs["masked_lm_log_probs"].numpy(), features["masked_lm_ids"].numpy(),
        features["masked_lm_weights"].numpy(), outputs["next_sentence_log_probs"].numpy(),
        features["next_sentence_labels"].numpy()[:, 0])
    assert float(expected_loss) == pytest.approx(np_total, rel=1e-5)

    learning_rate = 0.5
    optimizer = keras.optimizers.SGD(learning_rate)
    optimizer.build(model.trainable_variables)
    before = [v.numpy() for v in model.trainable_variables]
    state = training_loop.TrainingState(model, optimizer, tf.distribute.get_strategy())
    settings = training_loop.LoopSettings(num_train_steps=1, steps_per_execution=1, save_checkpoints_steps=1,
                                          keep_checkpoint_max=1, global_batch_size=8, clip_norm=clip_norm)
    iterator = iter(tf.data.Dataset.from_tensors(features).repeat())
    sums, finite = training_loop.make_train_chunk(state, settings)(iterator, tf.constant(1))
    assert bool(finite)
    assert float(distributed_loss.metrics_from_sums(sums)["loss"]) == pytest.approx(np_total, rel=1e-5)
    moved = 0
    for w0, w1, g in zip(before, model.trainable_variables, grads):
        g = tf.convert_to_tensor(g).numpy()
        np.testing.assert_allclose(w1.numpy() - w0, -learning_rate * scale * g, rtol=1e-3, atol=1e-7)
        moved += bool(np.abs(g).max() > 0)
    assert moved > 10


def test_padding_rows_of_weight_zero_count_for_nothing():
    """A batch of 4 real examples padded to 6 (input_pipeline.pad_batch) gives the sums of the
    4 alone, whatever the model says about the padding rows."""
    outputs, features = _random_batch(seed=1)
    real = dict({k: v[:4] for k, v in features.items()}, masked_lm_weights=np.ones([4, P], np.float32))
    padded = input_pipeline.pad_batch({k: tf.constant(v) for k, v in real.items()}, B)
    np.testing.assert_array_equal(padded["example_weight"].numpy(), [1, 1, 1, 1, 0, 0])
    assert padded["masked_lm_ids"].shape == (B, P) and not padded["masked_lm_weights"].numpy()[4:].any()
    padded = dict(padded, masked_lm_weights=tf.ones([B, P]))  # even with weights left on the padding
    terms = distributed_loss.replica_loss_terms(outputs, padded)
    expected = distributed_loss.replica_loss_terms({k: v[:4] for k, v in outputs.items()}, real)
    assert float(terms["examples"]) == 4 and float(terms["mlm_weight_sum"]) == 4 * P
    for name in expected:
        assert float(terms[name]) == pytest.approx(float(expected[name]), rel=1e-6), name
    _, mlm, nsp = numpy_pretraining_loss(outputs["masked_lm_log_probs"][:4], real["masked_lm_ids"], np.ones([4, P]),
                                         outputs["next_sentence_log_probs"][:4], real["next_sentence_labels"][:, 0])
    metrics = distributed_loss.metrics_from_sums(terms)
    assert float(metrics["masked_lm_loss"]) == pytest.approx(mlm, rel=1e-6)
    assert float(metrics["next_sentence_loss"]) == pytest.approx(nsp, rel=1e-6)
