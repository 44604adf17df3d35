"""The original optimization.py in tf_keras: AdamW without bias correction, LAMB, warmup + linear decay.

google-research/bert trains with `AdamWeightDecayOptimizer`: Adam moments without bias
correction, decoupled weight decay (added to the update, not to the loss) on every
variable except LayerNorm and bias ones, a learning rate that warms up linearly and then
decays linearly to 0, and gradients clipped to global norm 1.0. The optimizers here are
subclasses of the new-style `tf_keras.optimizers.Optimizer`, so their slots (adam_m,
adam_v) are tracked by tf.train.Checkpoint and they run under Mirrored/TPU strategies.
"""
from __future__ import annotations

import math
import re
from typing import Optional, Sequence

import tensorflow as tf
import tf_keras as keras  # Keras 2 on purpose: see components/bert/__init__.py.

# Variables whose names contain any of these (re.search) get no weight decay, as the
# original. The model names its LayerNorm layers "LayerNorm" and biases "...bias".
DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")

OPTIMIZER_TYPES = ("adamw", "lamb")


@keras.saving.register_keras_serializable(package="bert")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The original learning rate: linear warmup, then linear (power 1) decay to 0.

    As optimization.create_optimizer: the decay line runs from init_lr at step 0 to 0 at
    num_train_steps (tf.train.polynomial_decay, clamped after the end), and for
    step < num_warmup_steps the rate is init_lr * step / num_warmup_steps instead. So the
    rate at step 0 is 0, it reaches init_lr * (1 - num_warmup_steps / num_train_steps) at
    the end of warmup (not init_lr: the decay started at step 0), and 0 at num_train_steps.
    """

    def __init__(self, init_lr: float, num_train_steps: int, num_warmup_steps: int = 0,
                 name: Optional[str] = None):
        super().__init__()
        if init_lr <= 0:
            raise ValueError(f"init_lr must be positive, got {init_lr}")
        if num_train_steps <= 0:
            raise ValueError(f"num_train_steps must be positive, got {num_train_steps}")
        if num_warmup_steps < 0:
            raise ValueError(f"num_warmup_steps must be >= 0, got {num_warmup_steps}")
        self.init_lr = float(init_lr)
        self.num_train_steps = int(num_train_steps)
        self.num_warmup_steps = int(num_warmup_steps)
        self.name = name

    def __call__(self, step) -> tf.Tensor:
        """Args: step, an integer (the optimizer's iterations). Returns a float32 scalar."""
        with tf.name_scope(self.name or "WarmupLinearDecay"):
            step = tf.cast(step, tf.float32)
            decay_fraction = tf.minimum(step, float(self.num_train_steps)) / float(self.num_train_steps)
            learning_rate = self.init_lr * (1.0 - decay_fraction)
            if self.num_warmup_steps > 0:
                warmup_rate = self.init_lr * step / float(self.num_warmup_steps)
                learning_rate = tf.where(step < float(self.num_warmup_steps), warmup_rate, learning_rate)
            return learning_rate

    def get_config(self) -> dict:
        return {"init_lr": self.init_lr, "num_train_steps": self.num_train_steps,
                "num_warmup_steps": self.num_warmup_steps, "name": self.name}


@keras.saving.register_keras_serializable(package="bert")
class AdamWeightDecay(keras.optimizers.Optimizer):
    """Adam with decoupled weight decay, as the original AdamWeightDecayOptimizer.

    Per step, for gradient g of variable w (lr from the schedule at the current step):
        m <- beta_1 * m + (1 - beta_1) * g
        v <- beta_2 * v + (1 - beta_2) * g^2
        update = m / (sqrt(v) + epsilon)        (m, v bias-corrected if bias_correction)
        update += weight_decay_rate * w         (unless w's name matches an exclusion)
        w <- w - lr * update
    The original has no bias correction; `bias_correction=True` divides m and v by
    (1 - beta^t) as in the Adam paper. Slots are named adam_m and adam_v, as the original.
    """

    def __init__(self, learning_rate=1e-3, weight_decay_rate: float = 0.0, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-6,
                 exclude_from_weight_decay: Optional[Sequence[str]] = DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
                 bias_correction: bool = False, name: str = "AdamWeightDecay", **kwargs):
        # weight_decay=None: the base class's decay (applied before the update) is not used;
        # the decay is part of the update, which LAMB's trust ratio must see.
        kwargs.pop("weight_decay", None)
        super().__init__(name=name, weight_decay=None, **kwargs)
        if weight_decay_rate < 0:
            raise ValueError(f"weight_decay_rate must be >= 0, got {weight_decay_rate}")
        for beta_name, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 < beta < 1.0:
                raise ValueError(f"{beta_name} must be in (0, 1), got {beta}")
        self._learning_rate = self._build_learning_rate(learning_rate)
        self.weight_decay_rate = float(weight_decay_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.exclude_from_weight_decay_patterns = tuple(exclude_from_weight_decay or ())
        self.bias_correction = bool(bias_correction)

    def build(self, var_list):
        super().build(var_list)
        if getattr(self, "_built", False):
            return
        self._built = True
        self._adam_m = [self.add_variable_from_reference(var, "adam_m") for var in var_list]
        self._adam_v = [self.add_variable_from_reference(var, "adam_v") for var in var_list]
        # The base class creates its current-learning-rate variable on the first
        # apply_gradients. Creating it here too means that after an explicit build() the
        # training tf.function creates no variables, so it is traced once, not twice.
        self._compute_current_learning_rate()

    def _excluded(self, variable: tf.Variable) -> bool:
        """Whether `variable`'s name matches an exclusion pattern (LayerNorm, bias)."""
        return any(re.search(pattern, variable.name) for pattern in self.exclude_from_weight_decay_patterns)

    def _decays(self, variable: tf.Variable) -> bool:
        """Whether `variable` gets weight decay: a rate > 0 and not excluded."""
        return self.weight_decay_rate > 0.0 and not self._excluded(variable)

    def _scale_update(self, update: tf.Tensor, variable: tf.Variable) -> tf.Tensor:
        """Hook for LAMB's layer-wise trust ratio; Adam applies the update as it is."""
        return update

    def update_step(self, gradient, variable):
        """Applies one update to `variable` (a dense or IndexedSlices gradient)."""
        dtype = variable.dtype
        if isinstance(gradient, tf.IndexedSlices):
            # Every row's moments decay each step (as the original, which also densifies).
            gradient = tf.convert_to_tensor(gradient)
        gradient = tf.cast(gradient, dtype)
        index = self._index_dict[self._var_key(variable)]
        m, v = self._adam_m[index], self._adam_v[index]
        # 1 - beta in Python (float64), as the original: in float32, 1 - float32(0.999) is
        # off by 1.3e-5 relative, which shows in the second moment.
        beta_1, one_minus_beta_1 = tf.cast(self.beta_1, dtype), tf.cast(1.0 - self.beta_1, dtype)
        beta_2, one_minus_beta_2 = tf.cast(self.beta_2, dtype), tf.cast(1.0 - self.beta_2, dtype)

        next_m = beta_1 * m + one_minus_beta_1 * gradient
        next_v = beta_2 * v + one_minus_beta_2 * tf.square(gradient)
        m_hat, v_hat = next_m, next_v
        if self.bias_correction:
            # 1 - beta^t as -expm1(t * log(beta)), log in Python: exact in float32 for the
            # same reason (and no float64, which TPUs lack).
            step = tf.cast(self.iterations + 1, dtype)
            m_hat = next_m / -tf.math.expm1(step * tf.cast(math.log(self.beta_1), dtype))
            v_hat = next_v / -tf.math.expm1(step * tf.cast(math.log(self.beta_2), dtype))
        update = m_hat / (tf.sqrt(v_hat) + tf.cast(self.epsilon, dtype))
        if self._decays(variable):
            update += tf.cast(self.weight_decay_rate, dtype) * variable
        update = self._scale_update(update, variable)

        m.assign(next_m)
        v.assign(next_v)
        variable.assign_sub(tf.cast(self.learning_rate, dtype) * update)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("weight_decay", None)
        config.update({
            "learning_rate": self._serialize_hyperparameter(self._learning_rate),
            "weight_decay_rate": self.weight_decay_rate,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "exclude_from_weight_decay": list(self.exclude_from_weight_decay_patterns),
            "bias_correction": self.bias_correction,
        })
        return config


@keras.saving.register_keras_serializable(package="bert")
class Lamb(AdamWeightDecay):
    """LAMB (You et al. 2019, "Large Batch Optimization for Deep Learning").

    The AdamWeightDecay update (bias-corrected by default, as in the paper) scaled per
    variable by the trust ratio ||w|| / ||update|| (1 where either norm is 0). Variables
    excluded from weight decay (LayerNorm, bias) are also excluded from the trust ratio,
    as in the reference implementations.
    """

    def __init__(self, learning_rate=1e-3, weight_decay_rate: float = 0.0, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-6,
                 exclude_from_weight_decay: Optional[Sequence[str]] = DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
                 bias_correction: bool = True, name: str = "Lamb", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay_rate=weight_decay_rate, beta_1=beta_1,
                         beta_2=beta_2, epsilon=epsilon, exclude_from_weight_decay=exclude_from_weight_decay,
                         bias_correction=bias_correction, name=name, **kwargs)

    def _scale_update(self, update: tf.Tensor, variable: tf.Variable) -> tf.Tensor:
        if self._excluded(variable):
            return update
        weight_norm = tf.norm(variable)
        update_norm = tf.norm(update)
        trust_ratio = tf.where(weight_norm > 0.0,
                               tf.where(update_norm > 0.0, weight_norm / update_norm, 1.0), 1.0)
        return trust_ratio * update


def create_optimizer(init_lr: float, num_train_steps: int, num_warmup_steps: int,
                     optimizer_type: str = "adamw", bias_correction: Optional[bool] = None,
                     weight_decay_rate: float = 0.01) -> AdamWeightDecay:
    """The original create_optimizer's optimizer, without the gradient clipping (the training
    loop clips the gradient summed over replicas: components/trainer/training_loop.py).

    Args:
      init_lr: peak learning rate (the original's --learning_rate).
      num_train_steps: the learning rate reaches 0 here.
      num_warmup_steps: steps of linear warmup (0: none).
      optimizer_type: "adamw" (the original AdamWeightDecayOptimizer) or "lamb".
      bias_correction: None for each optimizer's reference behaviour (adamw: off, as the
        original; lamb: on, as the paper), or force it on/off.
      weight_decay_rate: decoupled weight decay on all but LayerNorm and bias variables.
    Returns:
      An AdamWeightDecay or Lamb with beta_1 0.9, beta_2 0.999, epsilon 1e-6 and a
      WarmupLinearDecay schedule.
    """
    if optimizer_type not in OPTIMIZER_TYPES:
        raise ValueError(f"optimizer_type must be one of {OPTIMIZER_TYPES}, got {optimizer_type!r}")
    schedule = WarmupLinearDecay(init_lr, num_train_steps, num_warmup_steps)
    cls = AdamWeightDecay if optimizer_type == "adamw" else Lamb
    kwargs = {} if bias_correction is None else {"bias_correction": bias_correction}
    return cls(learning_rate=schedule, weight_decay_rate=weight_decay_rate, beta_1=0.9, beta_2=0.999,
               epsilon=1e-6, exclude_from_weight_decay=DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY, **kwargs)
