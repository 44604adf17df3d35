"""The exported SavedModel: what the Evaluator, Pusher and downstream fine-tuning load.

Signatures (all take `examples`: string [B], serialized tf.Examples of the
create_pretraining_data schema):
  serving_default -> masked_lm: float32 [B, P, V] log-probs at masked_lm_positions,
                     next_sentence: float32 [B, 2] log-probs.
                     (Log-probs suit the Evaluator's from_logits metrics: log_softmax is
                     idempotent, so softmax(log_probs) = probs.)
  encode          -> sequence_output: float32 [B, S, H], pooled_output: float32 [B, H].
                     A separate signature, so the Evaluator does not materialise
                     [B, S, H] per example.
The vocabulary and bert_config.json travel as assets (assets/vocab.txt,
assets/bert_config.json). Export always runs on a float32 copy of the model built
on the default device: a model trained under mixed precision on a TPU exports the
same as one trained on a CPU.
"""
from __future__ import annotations

import os
import tempfile
from typing import Optional

import tensorflow as tf
import tf_keras as keras

from components.bert.config import BertConfig
from components.bert.pretraining_model import BertPretrainingModel, ensure_built
from components.pretraining_data.schema import feature_spec

SERVING_OUTPUTS = ("masked_lm", "next_sentence")


def parse_serialized(serialized: tf.Tensor, max_seq_length: int, max_predictions_per_seq: int) -> dict:
    """string [B] -> the feature dict with int32 ints (as the input pipeline gives)."""
    parsed = tf.io.parse_example(serialized, feature_spec(max_seq_length, max_predictions_per_seq))
    return {name: tf.cast(t, tf.int32) if t.dtype == tf.int64 else t for name, t in parsed.items()}


class PretrainingServingModule(tf.Module):
    """Holds the model's variables and the assets; its tf.functions become the signatures.

    The Keras model itself is deliberately not an attribute: tf.saved_model.save would
    then trace and save every layer's call function (Keras metadata nobody loads here),
    which costs most of the export time. The signatures capture the variables.
    """

    def __init__(self, model: BertPretrainingModel, bert_config_file: str, vocab_file: Optional[str],
                 max_seq_length: int, max_predictions_per_seq: int):
        super().__init__()
        self.model_variables = list(model.variables)
        self.bert_config_asset = tf.saved_model.Asset(bert_config_file)
        self.vocab_asset = tf.saved_model.Asset(vocab_file) if vocab_file else None
        shape = (max_seq_length, max_predictions_per_seq)
        spec = [tf.TensorSpec([None], tf.string, name="examples")]

        @tf.function(input_signature=spec, autograph=False)
        def serve(examples: tf.Tensor) -> dict:
            outputs = model(parse_serialized(examples, *shape), training=False)
            return {"masked_lm": tf.cast(outputs["masked_lm_log_probs"], tf.float32),
                    "next_sentence": tf.cast(outputs["next_sentence_log_probs"], tf.float32)}

        @tf.function(input_signature=spec, autograph=False)
        def encode(examples: tf.Tensor) -> dict:
            outputs = model(parse_serialized(examples, *shape), training=False)
            return {"sequence_output": tf.cast(outputs["sequence_output"], tf.float32),
                    "pooled_output": tf.cast(outputs["pooled_output"], tf.float32)}

        self.serve = serve
        self.encode = encode


def float32_copy(trained: BertPretrainingModel, bert_config: BertConfig,
                 strategy: Optional[tf.distribute.Strategy] = None) -> BertPretrainingModel:
    """A float32 model holding `trained`'s weights, built under `strategy` (default: the
    default device)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        with (strategy or tf.distribute.get_strategy()).scope():
            model = BertPretrainingModel(bert_config)
            ensure_built(model)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model.set_weights(trained.get_weights())
    return model


def export_saved_model(trained: BertPretrainingModel, bert_config: BertConfig, vocab_file: Optional[str],
                       export_dir: str, max_seq_length: int, max_predictions_per_seq: int) -> str:
    """Writes the SavedModel to a temporary sibling of `export_dir`, then renames it into place.

    Returns:
      export_dir.
    """
    model = float32_copy(trained, bert_config)
    with tempfile.TemporaryDirectory() as scratch:
        config_path = os.path.join(scratch, "bert_config.json")
        bert_config.to_json_file(config_path)
        local_vocab = None
        if vocab_file:
            local_vocab = os.path.join(scratch, "vocab.txt")
            tf.io.gfile.copy(vocab_file, local_vocab, overwrite=True)
        module = PretrainingServingModule(model, config_path, local_vocab, max_seq_length,
                                          max_predictions_per_seq)
        staging = export_dir.rstrip("/") + ".partial"
        if tf.io.gfile.exists(staging):
            tf.io.gfile.rmtree(staging)
        tf.saved_model.save(module, staging, signatures={"serving_default": module.serve,
                                                         "encode": module.encode})
    if tf.io.gfile.exists(export_dir):
        tf.io.gfile.rmtree(export_dir)
    tf.io.gfile.rename(staging, export_dir)
    return export_dir
