"""BERT's input embeddings: word + token type + position, then LayerNorm and dropout.

As the original `embedding_lookup` + `embedding_postprocessor` of modeling.py: the token
type embeddings are a one-hot matmul (the table is tiny, and a matmul is fast on TPU), the
position embeddings are the first seq_length rows of a learned table, and the word
embeddings are a gather, or a one-hot matmul with `use_one_hot_embeddings` (the original's
TPU setting: a gather's gradient is a scatter, which is slow on TPU).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras  # Keras 2 on purpose: see components/bert/__init__.py.

from components.bert.config import BertConfig
from components.bert.modeling_utils import create_initializer, get_shape_list, layer_norm


class BertEmbeddings(keras.layers.Layer):
    """Embeds token ids, segment ids and positions into [B, S, H].

    Variables (original names under bert/embeddings/): word_embeddings [V, H],
    token_type_embeddings [type_vocab_size, H], position_embeddings
    [max_position_embeddings, H], LayerNorm/gamma and LayerNorm/beta [H].
    """

    def __init__(self, config: BertConfig, use_one_hot_embeddings: bool = False,
                 name: str = "embeddings", **kwargs):
        super().__init__(name=name, **kwargs)
        self.config = config
        self.use_one_hot_embeddings = use_one_hot_embeddings
        self.layer_norm = layer_norm()
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob)

    def build(self, input_shape):
        config = self.config
        stddev = config.initializer_range
        self.word_embeddings = self.add_weight(
            "word_embeddings", shape=[config.vocab_size, config.hidden_size],
            initializer=create_initializer(stddev))
        self.token_type_embeddings = self.add_weight(
            "token_type_embeddings", shape=[config.type_vocab_size, config.hidden_size],
            initializer=create_initializer(stddev))
        self.position_embeddings = self.add_weight(
            "position_embeddings", shape=[config.max_position_embeddings, config.hidden_size],
            initializer=create_initializer(stddev))
        super().build(input_shape)

    @property
    def word_embedding_table(self) -> tf.Variable:
        """The [vocab_size, hidden_size] word embedding variable, shared with the masked LM head."""
        return self.word_embeddings

    def call(self, input_ids: tf.Tensor, segment_ids: tf.Tensor, training=None,
             position_ids: tf.Tensor | None = None) -> tf.Tensor:
        """Embeds a batch.

        Args:
          input_ids: int32 [B, S] WordPiece ids.
          segment_ids: int32 [B, S] token type ids (0 for sentence A, 1 for sentence B).
          training: applies dropout if True.
          position_ids: int32 [B, S], each token's position in its own sequence (packed rows,
            see components/trainer/packing.py); None: 0..S-1, the original.
        Returns:
          [B, S, H] embeddings in the layer's compute dtype.
        Raises:
          ValueError: S is larger than max_position_embeddings (static shapes), or the
            inputs are not rank 2. With a dynamic S the check runs as an assertion op.
        """
        input_ids = tf.convert_to_tensor(input_ids)
        segment_ids = tf.convert_to_tensor(segment_ids)
        batch_size, seq_length = get_shape_list(input_ids, expected_rank=2, name="input_ids")
        get_shape_list(segment_ids, expected_rank=2, name="segment_ids")
        config = self.config
        dtype = self.compute_dtype
        max_positions = config.max_position_embeddings
        if isinstance(seq_length, int):
            if seq_length > max_positions:
                raise ValueError(
                    f"Sequence length {seq_length} is longer than max_position_embeddings "
                    f"({max_positions}) of this BertConfig")
            checks = []
        else:
            checks = [tf.debugging.assert_less_equal(
                seq_length, max_positions,
                message=f"Sequence length is longer than max_position_embeddings ({max_positions})")]

        flat_ids = tf.reshape(input_ids, [-1])
        if self.use_one_hot_embeddings:
            words = tf.matmul(tf.one_hot(flat_ids, depth=config.vocab_size, dtype=dtype),
                              self.word_embeddings)
        else:
            words = tf.gather(self.word_embeddings, flat_ids)
        flat_types = tf.reshape(segment_ids, [-1])
        types = tf.matmul(tf.one_hot(flat_types, depth=config.type_vocab_size, dtype=dtype),
                          self.token_type_embeddings)
        output = tf.reshape(words + types, [batch_size, seq_length, config.hidden_size])

        if position_ids is not None:
            # Packed rows: every sequence restarts at position 0, so its embeddings are those
            # it would have alone (positions < S <= max_position_embeddings, checked above).
            output = output + tf.gather(tf.convert_to_tensor(self.position_embeddings), position_ids)
        else:
            with tf.control_dependencies(checks):
                positions = tf.slice(tf.convert_to_tensor(self.position_embeddings), [0, 0], [seq_length, -1])
            # [S, H] broadcasts over the batch.
            output = output + positions[tf.newaxis, :, :]
        output = self.layer_norm(output)
        return self.dropout(output, training=training)
