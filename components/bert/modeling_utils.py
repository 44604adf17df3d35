"""The small helpers of the original modeling.py: GELU, activations, initialiser, LayerNorm, shapes.

Kept in one place so that every layer uses the same numerics (tanh-approximation GELU,
LayerNorm epsilon 1e-12, truncated-normal initialiser) as google-research/bert.
"""
from __future__ import annotations

import math
from typing import Callable, List, Optional, Union

import tensorflow as tf
import tf_keras as keras  # Keras 2 on purpose: see components/bert/__init__.py.

# The original's LayerNorm (tf.contrib.layers.layer_norm) uses epsilon 1e-12.
LAYER_NORM_EPSILON = 1e-12
# Weight-decay exclusion matches variable names against "LayerNorm" and "bias", as the
# original, so every LayerNorm layer carries this name (its variables: LayerNorm/gamma, beta).
LAYER_NORM_NAME = "LayerNorm"


def gelu(x: tf.Tensor) -> tf.Tensor:
    """GELU, tanh approximation, as the original modeling.gelu (same dtype as x)."""
    cdf = 0.5 * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))
    return x * cdf


def get_activation(name: Optional[str]) -> Optional[Callable[[tf.Tensor], tf.Tensor]]:
    """Maps an activation name of BertConfig.hidden_act to a function (None/"linear" -> None)."""
    if name is None or name.lower() == "linear":
        return None
    table = {"gelu": gelu, "relu": tf.nn.relu, "tanh": tf.tanh}
    try:
        return table[name.lower()]
    except KeyError:
        raise ValueError(f"Unsupported activation {name!r}; supported: linear, {', '.join(table)}") from None


def create_initializer(initializer_range: float) -> keras.initializers.Initializer:
    """Truncated normal (cut at 2 stddev, as tf.truncated_normal_initializer) with stddev=initializer_range.

    Call it once per variable: an unseeded tf_keras initializer instance returns the same
    values every time it is called, so a shared one would make q, k and v start equal.
    """
    return keras.initializers.TruncatedNormal(stddev=initializer_range)


def layer_norm() -> keras.layers.LayerNormalization:
    """A LayerNorm over the last axis named "LayerNorm" (gamma/beta), epsilon 1e-12."""
    return keras.layers.LayerNormalization(axis=-1, epsilon=LAYER_NORM_EPSILON, name=LAYER_NORM_NAME)


def get_shape_list(tensor, expected_rank: Optional[int] = None,
                   name: str = "tensor") -> List[Union[int, tf.Tensor]]:
    """The shape of `tensor` (a tensor or array) as a list: ints where static, scalar tensors where dynamic.

    Static dimensions stay ints so that TPU programs see fixed shapes; dynamic ones (None
    batch or sequence length in an exported signature) become tf.shape() entries.

    Raises:
      ValueError: the rank is not `expected_rank`.
    """
    tensor = tf.convert_to_tensor(tensor)
    static = tensor.shape.as_list()
    if expected_rank is not None and len(static) != expected_rank:
        raise ValueError(
            f"{name} must have rank {expected_rank}, got rank {len(static)} (shape {tensor.shape})")
    if all(dim is not None for dim in static):
        return static
    dynamic = tf.shape(tensor)
    return [dim if dim is not None else dynamic[i] for i, dim in enumerate(static)]
