"""The pretraining heads: masked LM (tied to the word embeddings) and next sentence prediction.

As run_pretraining.py's `get_masked_lm_output` and `get_next_sentence_output`. Both return
float32 log-probabilities whatever the compute dtype: logits are cast to float32 before the
bias and the softmax, and the biases are float32 variables, so losses are float32 under a
mixed_bfloat16 policy too.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras  # Keras 2 on purpose: see components/bert/__init__.py.

from components.bert.config import BertConfig
from components.bert.embeddings import BertEmbeddings
from components.bert.modeling_utils import create_initializer, get_activation, get_shape_list, layer_norm


def gather_indexes(sequence_tensor: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
    """Picks the vectors at `positions` of each sequence.

    Args:
      sequence_tensor: [B, S, H].
      positions: int32 [B, P], indices into S.
    Returns:
      [B, P, H], same dtype as sequence_tensor.
    """
    get_shape_list(sequence_tensor, expected_rank=3, name="sequence_tensor")
    get_shape_list(positions, expected_rank=2, name="masked_lm_positions")
    return tf.gather(sequence_tensor, positions, batch_dims=1)


class MaskedLMHead(keras.layers.Layer):
    """Predicts the original tokens at the masked positions.

    transform: dense [H, H] + hidden_act + LayerNorm, then logits against the word
    embedding table (output weights tied to the input embeddings, as the original) plus
    an output bias [V]. Original names: cls/predictions/transform/dense,
    cls/predictions/transform/LayerNorm, cls/predictions/output_bias.
    """

    def __init__(self, config: BertConfig, embeddings: BertEmbeddings, name: str = "masked_lm", **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        # The embeddings layer is shared with BertModel; Keras de-duplicates its variables
        # in the model's weight lists and checkpoints store shared objects once.
        self.embeddings = embeddings
        self.transform_dense = keras.layers.Dense(
            config.hidden_size, kernel_initializer=create_initializer(config.initializer_range),
            name="transform_dense")
        self.activation = get_activation(config.hidden_act)
        self.transform_layer_norm = layer_norm()

    def build(self, input_shape):
        # float32 even under a mixed policy (no autocast): added to float32 logits.
        self.output_bias = self.add_weight(
            "output_bias", shape=[self.config.vocab_size], initializer="zeros", dtype=tf.float32,
            experimental_autocast=False)
        super().build(input_shape)

    @property
    def output_weights(self) -> tf.Variable:
        """The [V, H] output projection: the word embedding variable itself."""
        return self.embeddings.word_embedding_table

    def call(self, sequence_output: tf.Tensor, masked_lm_positions: tf.Tensor, training=None) -> tf.Tensor:
        """Args: sequence_output [B, S, H]; masked_lm_positions int32 [B, P].

        Returns:
          float32 [B, P, V] log-probabilities over the vocabulary at each position.
        """
        hidden = gather_indexes(sequence_output, masked_lm_positions)
        hidden = self.transform_dense(hidden)
        if self.activation is not None:
            hidden = self.activation(hidden)
        hidden = self.transform_layer_norm(hidden)
        logits = tf.matmul(hidden, self.output_weights, transpose_b=True)
        logits = tf.cast(logits, tf.float32) + self.output_bias
        return tf.nn.log_softmax(logits, axis=-1)


class NextSentenceHead(keras.layers.Layer):
    """Classifies whether sentence B follows sentence A, from the pooled output.

    Original names: cls/seq_relationship/output_weights [2, H] (note: [out, in], applied
    with transpose_b) and cls/seq_relationship/output_bias [2].
    """

    def __init__(self, config: BertConfig, name: str = "next_sentence", **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config

    def build(self, input_shape):
        self.output_weights = self.add_weight(
            "output_weights", shape=[2, self.config.hidden_size],
            initializer=create_initializer(self.config.initializer_range))
        self.output_bias = self.add_weight(
            "output_bias", shape=[2], initializer="zeros", dtype=tf.float32, experimental_autocast=False)
        super().build(input_shape)

    def call(self, pooled_output: tf.Tensor, training=None) -> tf.Tensor:
        """Args: pooled_output [B, H]. Returns float32 [B, 2] log-probabilities (0 = IsNext)."""
        get_shape_list(pooled_output, expected_rank=2, name="pooled_output")
        logits = tf.matmul(pooled_output, self.output_weights, transpose_b=True)
        logits = tf.cast(logits, tf.float32) + self.output_bias
        return tf.nn.log_softmax(logits, axis=-1)
