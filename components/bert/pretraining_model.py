"""BertPretrainingModel: BERT with the masked LM and next sentence heads, on the original feature dict.

The features are those of google-research/bert's pretraining TFRecords (as read by
run_pretraining.py's input_fn): input_ids, input_mask, segment_ids [B, S] and
masked_lm_positions [B, P], all int32 (TPUs want int32, and fixed B, S, P). Labels
(masked_lm_ids, masked_lm_weights, next_sentence_labels) may be in the dict; the model
ignores them and the trainer's loss (components/trainer/distributed_loss.py) uses them.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import tensorflow as tf
import tf_keras as keras  # Keras 2 on purpose: see components/bert/__init__.py.

from components.bert.config import BertConfig
from components.bert.encoder import BertModel
from components.bert.heads import MaskedLMHead, NextSentenceHead

# The feature keys the model reads, in the original names: three [B, S], one [B, P].
SEQUENCE_FEATURES = ("input_ids", "input_mask", "segment_ids")
MODEL_FEATURES = SEQUENCE_FEATURES + ("masked_lm_positions",)
# Throughput mode's packed rows add these (components/trainer/packing.py): [B, S], [B, S], [B, K].
PACKED_FEATURES = ("packed_sequence_ids", "position_ids", "cls_positions")


class BertPretrainingModel(keras.Model):
    """BERT plus the pretraining heads (run_pretraining.py's model_fn, without the loss).

    Attributes:
      config: the BertConfig it was built from.
      bert: BertModel (embeddings, encoder, pooler).
      masked_lm_head: MaskedLMHead, output weights tied to bert.embeddings.
      next_sentence_head: NextSentenceHead.
    """

    def __init__(self, config: BertConfig, use_one_hot_embeddings: bool = False,
                 name: str = "bert_pretraining", **kwargs):
        super().__init__(name=name, **kwargs)
        if not isinstance(config, BertConfig):
            raise TypeError(f"BertPretrainingModel needs a BertConfig, got {type(config).__name__}")
        self.config = config
        self.use_one_hot_embeddings = use_one_hot_embeddings
        self.bert = BertModel(config, use_one_hot_embeddings=use_one_hot_embeddings)
        self.masked_lm_head = MaskedLMHead(config, self.bert.embeddings)
        self.next_sentence_head = NextSentenceHead(config)

    def call(self, features: Mapping[str, tf.Tensor], training=False) -> Dict[str, tf.Tensor]:
        """Runs BERT and both heads.

        Args:
          features: dict with int32 input_ids, input_mask, segment_ids [B, S] and
            masked_lm_positions [B, P]; with PACKED_FEATURES too, each row packs up to K
            sequences (see BertModel.call); other keys are ignored.
          training: applies dropout if True.
        Returns:
          dict with sequence_output [B, S, H] and pooled_output [B, H] (compute dtype),
          masked_lm_log_probs float32 [B, P, V], next_sentence_log_probs float32 [B, 2];
          packed: pooled_output [B, K, H] and next_sentence_log_probs [B, K, 2], one per
          sequence slot (slots past a row's sequences are to be weighted 0).
        Raises:
          KeyError: a feature the model reads is missing.
        """
        missing = [key for key in MODEL_FEATURES if key not in features]
        if missing:
            raise KeyError(f"BertPretrainingModel needs features {list(MODEL_FEATURES)}; missing {missing} "
                           f"(got {sorted(features)})")
        ids = {key: tf.cast(features[key], tf.int32) for key in MODEL_FEATURES}
        packed = ({key: tf.cast(features[key], tf.int32) for key in PACKED_FEATURES}
                  if PACKED_FEATURES[0] in features else None)
        sequence_output, pooled_output = self.bert(
            ids["input_ids"], ids["input_mask"], ids["segment_ids"], training=training, packed=packed)
        if packed is None:
            next_sentence = self.next_sentence_head(pooled_output)
        else:
            batch, slots = tf.shape(pooled_output)[0], tf.shape(pooled_output)[1]
            flat = self.next_sentence_head(tf.reshape(pooled_output, [-1, self.config.hidden_size]))
            next_sentence = tf.reshape(flat, [batch, slots, 2])
        return {
            "sequence_output": sequence_output,
            "pooled_output": pooled_output,
            "masked_lm_log_probs": self.masked_lm_head(sequence_output, ids["masked_lm_positions"]),
            "next_sentence_log_probs": next_sentence,
        }

    def get_config(self) -> dict:
        return {"config": self.config.to_dict(), "use_one_hot_embeddings": self.use_one_hot_embeddings,
                "name": self.name}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None) -> "BertPretrainingModel":
        return cls(BertConfig.from_dict(config["config"]),
                   use_one_hot_embeddings=config.get("use_one_hot_embeddings", False),
                   name=config.get("name", "bert_pretraining"))


def dummy_features(batch_size: int = 1, seq_length: int = 2,
                   max_predictions_per_seq: int = 1) -> Dict[str, tf.Tensor]:
    """All-zero int32 features of the given shapes (input_mask all ones), to build variables."""
    features = {key: tf.zeros([batch_size, seq_length], tf.int32) for key in SEQUENCE_FEATURES}
    features["input_mask"] = tf.ones([batch_size, seq_length], tf.int32)
    features["masked_lm_positions"] = tf.zeros([batch_size, max_predictions_per_seq], tf.int32)
    return features


def feature_specs(batch_size: Optional[int] = None, seq_length: Optional[int] = None,
                  max_predictions_per_seq: Optional[int] = None) -> Dict[str, tf.TensorSpec]:
    """int32 TensorSpecs of the features the model reads (None = any size), e.g. for export."""
    specs = {key: tf.TensorSpec([batch_size, seq_length], tf.int32, name=key) for key in SEQUENCE_FEATURES}
    specs["masked_lm_positions"] = tf.TensorSpec([batch_size, max_predictions_per_seq], tf.int32,
                                                 name="masked_lm_positions")
    return specs


def ensure_built(model: BertPretrainingModel) -> None:
    """Creates the model's variables if they do not exist yet.

    Loading weights needs the variables to exist, and Keras creates them on the first
    call, here on tiny dummy features. Keras also records the first call's input shapes
    as the model's save spec, which a Keras SavedModel export traces; the spec is set
    first to any batch and sequence size, so the dummy [1, 2] shapes do not pin an
    exported model to sequences of length 2. (Tracing the first call symbolically would
    do the same through public API but costs seconds per model.) Under a distribution
    strategy, call it inside strategy.scope().
    """
    if not model.built:
        model._set_save_spec(feature_specs())  # pylint: disable=protected-access
        model(dummy_features(), training=False)
