"""The public API: build a pretraining BERT from a bert_config.json and restore its weights.

Usage (numerical parity with google-research/bert, given the original's outputs on the
same features, e.g. from its run_pretraining.py or an estimator predict):

    import tensorflow as tf
    from components.bert.api import load_pretraining_model

    model = load_pretraining_model("uncased_L-12_H-768_A-12/bert_config.json",
                                   "uncased_L-12_H-768_A-12/bert_model.ckpt")
    features = {  # the original feature dict; int32, [B, S] and [B, P]
        "input_ids": tf.constant([[101, 7592, 103, 102]]),
        "input_mask": tf.constant([[1, 1, 1, 1]]),
        "segment_ids": tf.constant([[0, 0, 0, 0]]),
        "masked_lm_positions": tf.constant([[2]]),
    }
    outputs = model(features, training=False)
    outputs["sequence_output"]          # [1, 4, 768]  the original get_sequence_output()
    outputs["pooled_output"]            # [1, 768]     the original get_pooled_output()
    outputs["masked_lm_log_probs"]      # [1, 1, 30522]
    outputs["next_sentence_log_probs"]  # [1, 2]

The same call restores this project's TF2 training checkpoints (a tf.train.Checkpoint
whose model is under the key "model"); a directory means its latest checkpoint.
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf

from components.bert.config import BertConfig
from components.bert.pretraining_model import BertPretrainingModel, ensure_built
from components.bert.tf1_checkpoint import is_tf1_checkpoint, load_tf1_checkpoint

# The key under which the trainer's tf.train.Checkpoint holds the model.
TF2_CHECKPOINT_MODEL_KEY = "model"


def resolve_checkpoint(checkpoint_path: str) -> str:
    """A checkpoint prefix: `checkpoint_path` itself, or the latest checkpoint of a directory.

    Raises:
      FileNotFoundError: no checkpoint there.
    """
    if tf.io.gfile.isdir(checkpoint_path):
        prefix = tf.train.latest_checkpoint(checkpoint_path)
        if prefix is None:
            raise FileNotFoundError(f"No checkpoint in directory {checkpoint_path} (no 'checkpoint' file)")
        return prefix
    if not tf.io.gfile.exists(checkpoint_path + ".index"):
        raise FileNotFoundError(f"No checkpoint at {checkpoint_path} ({checkpoint_path}.index does not exist)")
    return checkpoint_path


def load_weights(model: BertPretrainingModel, checkpoint_path: str) -> str:
    """Restores `model`'s weights from an original TF1 checkpoint or a TF2 training checkpoint.

    Only weights are restored (no optimizer state, no step), as the original
    init_checkpoint. Under a distribution strategy, call it inside strategy.scope().

    Args:
      model: a BertPretrainingModel whose config matches the checkpoint.
      checkpoint_path: a checkpoint prefix or a directory (its latest checkpoint).
    Returns:
      "tf1" or "tf2", the format that was loaded.
    Raises:
      FileNotFoundError: no checkpoint at checkpoint_path.
      ValueError: the checkpoint does not fit the model (missing variable, wrong shape).
    """
    prefix = resolve_checkpoint(checkpoint_path)
    ensure_built(model)
    if is_tf1_checkpoint(prefix):
        load_tf1_checkpoint(model, prefix)
        return "tf1"
    status = tf.train.Checkpoint(**{TF2_CHECKPOINT_MODEL_KEY: model}).restore(prefix)
    try:
        # Every model variable must come from the checkpoint; optimizer entries may be unused.
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ValueError(f"{prefix} is neither an original BERT checkpoint nor a TF2 checkpoint with this "
                         f"model under the key '{TF2_CHECKPOINT_MODEL_KEY}': {e}") from e
    status.expect_partial()
    return "tf2"


def load_pretraining_model(bert_config_file: str, checkpoint_path: Optional[str] = None,
                           use_one_hot_embeddings: bool = False) -> BertPretrainingModel:
    """Builds a BertPretrainingModel from a bert_config.json and optionally restores its weights.

    Args:
      bert_config_file: path of a bert_config.json (original or written by BertConfig).
      checkpoint_path: None (random initialisation), an original TF1 checkpoint prefix
        (bert_model.ckpt), a TF2 tf.train.Checkpoint prefix with the model under "model",
        or a directory holding either (its latest checkpoint).
      use_one_hot_embeddings: word embeddings by one-hot matmul (the original's TPU
        setting) instead of a gather; numerically the same.
    Returns:
      A built model: model(features, training=False) -> dict with sequence_output
      [B, S, H], pooled_output [B, H], masked_lm_log_probs [B, P, V] and
      next_sentence_log_probs [B, 2].
    Raises:
      FileNotFoundError / ValueError: see BertConfig.from_json_file and load_weights.
    """
    config = BertConfig.from_json_file(bert_config_file)
    model = BertPretrainingModel(config, use_one_hot_embeddings=use_one_hot_embeddings)
    ensure_built(model)
    if checkpoint_path:
        load_weights(model, checkpoint_path)
    return model
