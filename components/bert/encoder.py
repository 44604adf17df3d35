"""The BERT encoder: post-LN transformer layers and BertModel (embeddings + encoder + pooler).

Faithful to the original modeling.py `transformer_model` / `attention_layer`: q/k/v are
[H, H] dense layers with the heads folded in, scores are scaled by 1/sqrt(head size),
padding gets an additive -10000 bias, and each sub-layer is dropout -> residual ->
LayerNorm (post-LN).

Activations are applied in `call`, not passed to Dense: a Dense's config would record
"gelu" by name, and Keras' own "gelu" is the exact (erf) GELU, not the original's tanh
approximation, so a model revived from its config would silently change numerics.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import tensorflow as tf
import tf_keras as keras  # Keras 2 on purpose: see components/bert/__init__.py.

from components.bert.config import BertConfig
from components.bert.embeddings import BertEmbeddings
from components.bert.modeling_utils import create_initializer, get_activation, get_shape_list, layer_norm

# The original adds -10000 (not -inf) to the scores of padded keys: after softmax their
# probability is ~0, and a fully padded row still gives finite numbers.
MASK_BIAS = -10000.0


def attention_mask_bias(input_mask: tf.Tensor) -> tf.Tensor:
    """Turns a padding mask into an additive bias on the attention scores.

    Args:
      input_mask: int32 [B, S], 1 for real tokens and 0 for padding.
    Returns:
      float32 [B, 1, 1, S]: 0 where attending is allowed, -10000 at padded keys; it
      broadcasts over heads and query positions (the original's [B, S, S] mask is the
      same row for every query).
    """
    mask = tf.cast(input_mask, tf.float32)
    return ((1.0 - mask) * MASK_BIAS)[:, tf.newaxis, tf.newaxis, :]


def packed_attention_mask_bias(packed_sequence_ids: tf.Tensor) -> tf.Tensor:
    """The bias for rows that pack several sequences: block-diagonal, one block per sequence.

    Args:
      packed_sequence_ids: int32 [B, S], 1..k for the k sequences of a row, 0 for padding.
    Returns:
      float32 [B, 1, S, S]: 0 where query and key belong to the same sequence, -10000
      elsewhere (other sequences and padding), so each sequence attends to itself alone, as
      if it were unpacked (exp(-10000) is 0 in float32, as for the original's padding).
    """
    ids = packed_sequence_ids
    same = tf.logical_and(tf.equal(ids[:, :, tf.newaxis], ids[:, tf.newaxis, :]), ids[:, tf.newaxis, :] > 0)
    return ((1.0 - tf.cast(same, tf.float32)) * MASK_BIAS)[:, tf.newaxis, :, :]


class AttentionLayer(keras.layers.Layer):
    """Multi-head self-attention plus its output projection, dropout, residual and LayerNorm.

    Original names (under .../layer_i/attention/): self/query, self/key, self/value
    (kernels [H, H]), output/dense [H, H], output/LayerNorm.
    """

    def __init__(self, config: BertConfig, name: str = "attention", **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        hidden = config.hidden_size
        stddev = config.initializer_range
        self.query = keras.layers.Dense(hidden, kernel_initializer=create_initializer(stddev), name="query")
        self.key = keras.layers.Dense(hidden, kernel_initializer=create_initializer(stddev), name="key")
        self.value = keras.layers.Dense(hidden, kernel_initializer=create_initializer(stddev), name="value")
        self.attention_dropout = keras.layers.Dropout(config.attention_probs_dropout_prob)
        self.output_dense = keras.layers.Dense(hidden, kernel_initializer=create_initializer(stddev),
                                               name="output_dense")
        self.output_dropout = keras.layers.Dropout(config.hidden_dropout_prob)
        self.output_layer_norm = layer_norm()

    def call(self, hidden_states: tf.Tensor, mask_bias: tf.Tensor, training=None) -> tf.Tensor:
        """Args: hidden_states [B, S, H]; mask_bias float32 [B, 1, 1, S] (or [B, 1, S, S] for
        packed rows). Returns [B, S, H]."""
        batch_size, seq_length, hidden = get_shape_list(hidden_states, expected_rank=3, name="hidden_states")
        heads = self.config.num_attention_heads
        head_size = self.config.attention_head_size

        def split_heads(x):  # [B, S, H] -> [B, N, S, H/N]
            x = tf.reshape(x, [batch_size, seq_length, heads, head_size])
            return tf.transpose(x, [0, 2, 1, 3])

        query = split_heads(self.query(hidden_states))
        key = split_heads(self.key(hidden_states))
        value = split_heads(self.value(hidden_states))

        scores = tf.matmul(query, key, transpose_b=True) * (1.0 / math.sqrt(float(head_size)))
        # Softmax in float32 even under a bfloat16/float16 policy: the -10000 bias and the
        # exponentials need the range (a no-op cast in float32, where it equals the original).
        scores = tf.cast(scores, tf.float32) + mask_bias
        probs = tf.cast(tf.nn.softmax(scores, axis=-1), hidden_states.dtype)
        probs = self.attention_dropout(probs, training=training)

        context = tf.matmul(probs, value)  # [B, N, S, H/N]
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch_size, seq_length, hidden])

        output = self.output_dropout(self.output_dense(context), training=training)
        return self.output_layer_norm(output + hidden_states)


class TransformerLayer(keras.layers.Layer):
    """One post-LN transformer layer: attention, then feed-forward with residual + LayerNorm.

    Original names (under bert/encoder/layer_i/): attention/..., intermediate/dense
    [H, I], output/dense [I, H], output/LayerNorm.
    """

    def __init__(self, config: BertConfig, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        stddev = config.initializer_range
        self.attention = AttentionLayer(config)
        self.intermediate = keras.layers.Dense(
            config.intermediate_size, kernel_initializer=create_initializer(stddev), name="intermediate")
        self.activation = get_activation(config.hidden_act)
        self.output_dense = keras.layers.Dense(
            config.hidden_size, kernel_initializer=create_initializer(stddev), name="output_dense")
        self.output_dropout = keras.layers.Dropout(config.hidden_dropout_prob)
        self.output_layer_norm = layer_norm()

    def call(self, hidden_states: tf.Tensor, mask_bias: tf.Tensor, training=None) -> tf.Tensor:
        """Args: hidden_states [B, S, H]; mask_bias float32 [B, 1, 1, S]. Returns [B, S, H]."""
        attention_output = self.attention(hidden_states, mask_bias, training=training)
        intermediate = self.intermediate(attention_output)
        if self.activation is not None:
            intermediate = self.activation(intermediate)
        output = self.output_dropout(self.output_dense(intermediate), training=training)
        return self.output_layer_norm(output + attention_output)


class BertModel(keras.layers.Layer):
    """BERT: embeddings, L transformer layers and the pooler (tanh dense on [CLS]).

    Attributes:
      embeddings: BertEmbeddings (its `word_embedding_table` is tied to the MLM head).
      encoder_layers: list of L TransformerLayer, layer_0 .. layer_{L-1}.
      pooler: Dense [H, H] applied (with tanh) to the first token's final hidden state.
    """

    def __init__(self, config: BertConfig, use_one_hot_embeddings: bool = False,
                 name: str = "bert", **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        self.embeddings = BertEmbeddings(config, use_one_hot_embeddings=use_one_hot_embeddings)
        self.encoder_layers = [TransformerLayer(config, name=f"layer_{i}")
                               for i in range(config.num_hidden_layers)]
        self.pooler = keras.layers.Dense(config.hidden_size, activation="tanh",
                                         kernel_initializer=create_initializer(config.initializer_range),
                                         name="pooler")

    def call(self, input_ids: tf.Tensor, input_mask: Optional[tf.Tensor] = None,
             segment_ids: Optional[tf.Tensor] = None, training=None,
             packed: Optional[dict] = None) -> Tuple[tf.Tensor, tf.Tensor]:
        """Encodes a batch.

        Args:
          input_ids: int32 [B, S] WordPiece ids.
          input_mask: int32 [B, S], 1 for real tokens, 0 for padding (None: all ones).
          segment_ids: int32 [B, S] token type ids (None: all zeros).
          training: applies dropout if True.
          packed: rows holding several sequences (components/trainer/packing.py): int32
            packed_sequence_ids [B, S] (1..k, 0 = padding), position_ids [B, S] (position in
            its own sequence) and cls_positions [B, K] (where each sequence starts). Attention
            is block-diagonal, positions restart per sequence, and the pooler runs on every
            sequence's [CLS]: each sequence's outputs are those it would have alone.
        Returns:
          (sequence_output [B, S, H], pooled_output [B, H], or [B, K, H] when packed), in
          the compute dtype (float32, or bfloat16 under a mixed_bfloat16 policy).
        """
        input_ids = tf.convert_to_tensor(input_ids)
        input_mask = tf.ones_like(input_ids) if input_mask is None else tf.convert_to_tensor(input_mask)
        segment_ids = tf.zeros_like(input_ids) if segment_ids is None else tf.convert_to_tensor(segment_ids)
        if packed is None:
            hidden_states = self.embeddings(input_ids, segment_ids, training=training)
            mask_bias = attention_mask_bias(input_mask)
        else:
            hidden_states = self.embeddings(input_ids, segment_ids, training=training,
                                            position_ids=packed["position_ids"])
            mask_bias = packed_attention_mask_bias(packed["packed_sequence_ids"])
        for layer in self.encoder_layers:
            hidden_states = layer(hidden_states, mask_bias, training=training)
        if packed is None:
            pooled_output = self.pooler(hidden_states[:, 0, :])
        else:
            pooled_output = self.pooler(tf.gather(hidden_states, packed["cls_positions"], batch_dims=1))
        return hidden_states, pooled_output
