"""Tests for components/bert/optimization.py: schedule, AdamW/LAMB maths, decay exclusion, slots."""
import copy

import numpy as np
import pytest
import tensorflow as tf

from components.bert.config import load_preset
from components.bert.optimization import AdamWeightDecay, Lamb, WarmupLinearDecay, create_optimizer
from components.bert.pretraining_model import BertPretrainingModel, ensure_built
from components.bert.tf1_checkpoint import tf1_variable_map

BETA_1, BETA_2, EPS = 0.9, 0.999, 1e-6


def _variables():
    """A decayed kernel and an undecayed bias, named as Keras names them."""
    kernel = tf.Variable([[0.5, -1.0], [2.0, 0.25]], name="layer/dense/kernel")
    bias = tf.Variable([0.1, -0.2], name="layer/dense/bias")
    return [kernel, bias]


GRADS = [
    [np.array([[0.1, -0.2], [0.3, 0.05]], np.float32), np.array([0.5, -0.1], np.float32)],
    [np.array([[-0.3, 0.1], [0.2, 0.4]], np.float32), np.array([0.2, 0.3], np.float32)],
]


def _numpy_adamw(weights, grads_per_step, lr, decay, decayed, bias_correction=False, trust_ratio=False):
    """The original AdamWeightDecayOptimizer's update (optionally bias-corrected / LAMB), in float64."""
    weights = [w.astype(np.float64) for w in weights]
    lrs = lr if isinstance(lr, list) else [lr] * len(grads_per_step)
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    for t, (grads, lr) in enumerate(zip(grads_per_step, lrs), start=1):
        for i, g in enumerate(grads):
            m[i] = BETA_1 * m[i] + (1 - BETA_1) * g
            v[i] = BETA_2 * v[i] + (1 - BETA_2) * g * g
            m_hat, v_hat = m[i], v[i]
            if bias_correction:
                m_hat, v_hat = m[i] / (1 - BETA_1 ** t), v[i] / (1 - BETA_2 ** t)
            update = m_hat / (np.sqrt(v_hat) + EPS)
            if decayed[i]:
                update = update + decay * weights[i]
                if trust_ratio:
                    update = update * np.linalg.norm(weights[i]) / np.linalg.norm(update)
            weights[i] = weights[i] - lr * update
    return weights, m, v


@pytest.mark.parametrize("step, expected", [
    (0, 0.0),            # warmup starts at 0, as the original
    (5, 0.5),            # mid-warmup: init_lr * 5 / 10
    (9, 0.9),            # last warmup step
    (10, 0.9),           # the peak: the decay line, which started at step 0: 1 - 10/100
    (55, 0.45),          # mid-decay
    (100, 0.0),          # end
    (150, 0.0),          # clamped after the end
])
def test_warmup_linear_decay_values(step, expected):
    schedule = WarmupLinearDecay(init_lr=1.0, num_train_steps=100, num_warmup_steps=10)
    assert float(schedule(step)) == pytest.approx(expected, abs=1e-6)


def test_schedule_without_warmup_and_config():
    schedule = WarmupLinearDecay(init_lr=2e-3, num_train_steps=10, num_warmup_steps=0)
    assert float(schedule(0)) == pytest.approx(2e-3)
    assert float(schedule(5)) == pytest.approx(1e-3)
    assert WarmupLinearDecay.from_config(schedule.get_config()).get_config() == schedule.get_config()
    with pytest.raises(ValueError, match="num_train_steps must be positive"):
        WarmupLinearDecay(1e-3, 0, 0)


def test_adamw_two_steps_equal_the_original_formula():
    variables = _variables()
    initial = [v.numpy() for v in variables]
    optimizer = AdamWeightDecay(learning_rate=0.1, weight_decay_rate=0.01)
    for grads in GRADS:
        optimizer.apply_gradients(zip([tf.constant(g) for g in grads], variables))
    expected, m, v = _numpy_adamw(initial, GRADS, lr=0.1, decay=0.01, decayed=[True, False])
    for variable, want in zip(variables, expected):
        np.testing.assert_allclose(variable.numpy(), want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(optimizer._adam_m[0].numpy(), m[0], rtol=1e-5)
    np.testing.assert_allclose(optimizer._adam_v[1].numpy(), v[1], rtol=1e-5)
    assert optimizer.iterations.numpy() == 2  # one update per step, whatever the replica count


def test_bias_correction_option():
    variables = _variables()
    initial = [v.numpy() for v in variables]
    optimizer = AdamWeightDecay(learning_rate=0.1, weight_decay_rate=0.01, bias_correction=True)
    for grads in GRADS:
        optimizer.apply_gradients(zip([tf.constant(g) for g in grads], variables))
    expected, _, _ = _numpy_adamw(initial, GRADS, lr=0.1, decay=0.01, decayed=[True, False], bias_correction=True)
    for variable, want in zip(variables, expected):
        np.testing.assert_allclose(variable.numpy(), want, rtol=1e-6, atol=1e-7)


def test_lamb_scales_by_the_trust_ratio_except_excluded_variables():
    variables = _variables()
    initial = [v.numpy() for v in variables]
    optimizer = create_optimizer(0.1, num_train_steps=1000, num_warmup_steps=0, optimizer_type="lamb")
    assert isinstance(optimizer, Lamb) and optimizer.bias_correction  # as the LAMB paper
    for grads in GRADS:
        optimizer.apply_gradients(zip([tf.constant(g) for g in grads], variables))
    # The schedule decays from step 0: step 0 uses 0.1, step 1 uses 0.1 * (1 - 1/1000).
    expected, _, _ = _numpy_adamw(initial, GRADS, lr=[0.1, 0.1 * 0.999], decay=0.01, decayed=[True, False],
                                  bias_correction=True, trust_ratio=True)
    for variable, want in zip(variables, expected):
        np.testing.assert_allclose(variable.numpy(), want, rtol=1e-6, atol=1e-7)


def test_only_decayed_variables_shrink_with_zero_gradients():
    model = BertPretrainingModel(load_preset("bert_test"))
    ensure_built(model)
    names = {variable.ref(): name for name, variable in tf1_variable_map(model).items()}
    before = {name: variable.numpy() for name, variable in tf1_variable_map(model).items()}
    optimizer = AdamWeightDecay(learning_rate=0.1, weight_decay_rate=0.01)
    zeros = [tf.zeros_like(variable) for variable in model.trainable_variables]
    optimizer.apply_gradients(zip(zeros, model.trainable_variables))
    assert len(names) == len(model.trainable_variables)
    for variable in model.trainable_variables:
        name = names[variable.ref()]
        # The original excludes by its names: LayerNorm gamma/beta and every *bias.
        excluded = "LayerNorm" in name or "bias" in name
        want = before[name] if excluded else before[name] * (1 - 0.1 * 0.01)
        np.testing.assert_allclose(variable.numpy(), want, rtol=1e-6, err_msg=name)


def test_slots_are_saved_and_restored_by_tf_train_checkpoint(tmp_path):
    variables = _variables()
    optimizer = create_optimizer(1e-2, num_train_steps=10, num_warmup_steps=2)
    for grads in GRADS:
        optimizer.apply_gradients(zip([tf.constant(g) for g in grads], variables))
    path = tf.train.Checkpoint(optimizer=optimizer, variables=variables).save(str(tmp_path / "ckpt"))

    for build_first in (True, False):  # restoring into a built and into a not-yet-built optimizer
        fresh = _variables()
        restored = create_optimizer(1e-2, num_train_steps=10, num_warmup_steps=2)
        if build_first:
            restored.build(fresh)
        status = tf.train.Checkpoint(optimizer=restored, variables=fresh).restore(path)
        restored.build(fresh)
        status.assert_consumed()
        assert restored.iterations.numpy() == 2
        for slots in ("_adam_m", "_adam_v"):
            for want, got in zip(getattr(optimizer, slots), getattr(restored, slots)):
                assert np.abs(want.numpy()).max() > 0
                np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_create_optimizer_defaults_and_config():
    optimizer = create_optimizer(1e-4, num_train_steps=100, num_warmup_steps=10)
    assert isinstance(optimizer, AdamWeightDecay) and not isinstance(optimizer, Lamb)
    assert (optimizer.weight_decay_rate, optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (
        0.01, 0.9, 0.999, 1e-6)
    assert not optimizer.bias_correction
    assert optimizer.exclude_from_weight_decay_patterns == ("LayerNorm", "layer_norm", "bias")
    config = optimizer.get_config()
    assert config["learning_rate"]["config"] == {"init_lr": 1e-4, "num_train_steps": 100,
                                                 "num_warmup_steps": 10, "name": None}
    assert AdamWeightDecay.from_config(copy.deepcopy(config)).get_config() == config
    assert create_optimizer(1e-4, 100, 10, bias_correction=True).bias_correction
    with pytest.raises(ValueError, match="optimizer_type must be one of"):
        create_optimizer(1e-4, 100, 10, optimizer_type="sgd")
