"""Warm start from a base model (the latest blessed one, when retraining).

A Model artifact is self-contained, so it works the same locally and on Vertex AI:

    <model uri>/Format-Serving/      the SavedModel (signatures only: no optimizer state)
    <model uri>/Checkpoint/ckpt-*    a TF2 checkpoint of `model` and `optimizer` (weights,
                                     AdamW/LAMB slots, step) at the end of training
    <model uri>/Checkpoint/warm_start.json
                                     what a successor must agree with: the BertConfig,
                                     max_seq_length, max_predictions_per_seq, the
                                     vocabulary's sha256, optimizer settings, steps

The rule for a successor (`plan_warm_start`):
  - vocabulary (by content), max_seq_length or architecture differ: refused, with a
    message naming both; nothing is trained.
  - optimizer type and bias correction unchanged, and no bias correction (the original
    AdamW): weights AND optimizer slots are restored.
  - otherwise: weights only (logged).
In two-phase pretraining (pipeline/phases.py) the length may differ: phase 1 may start from
a base trained at phase 2's length, and phase 2 from phase 1 (the position table already
covers both: max_position_embeddings is an architecture field). Phase 2 always restores
weights only: a fresh optimizer, as google-research/bert's and NVIDIA's phase 2 do.
Either way the optimizer's step starts again at 0: the new run trains num_train_steps
more steps with a fresh warm-up and linear decay (the original schedule ends at 0, so
"continuing the decay" would train at a zero learning rate; re-warming is what continued
pretraining needs when new data arrives). Bias-corrected moments are not restored
because they would be divided by (1 - beta^t) for a small t again, overscaling them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Optional

import tensorflow as tf


logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "Checkpoint"
INFO_FILE = "warm_start.json"
CHECKPOINT_PREFIX = "ckpt"
# Fields that fix the variables' shapes and the computation: must agree to warm-start.
ARCHITECTURE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                       "intermediate_size", "hidden_act", "max_position_embeddings", "type_vocab_size")

WEIGHTS_AND_OPTIMIZER = "weights_and_optimizer"
WEIGHTS = "weights"


def file_sha256(path: Optional[str]) -> Optional[str]:
    if not path:
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def model_checkpoint_dir(serving_model_dir: str) -> str:
    """<model uri>/Checkpoint for a model whose SavedModel is at <model uri>/Format-Serving."""
    return f"{os.path.dirname(serving_model_dir.rstrip('/'))}/{CHECKPOINT_DIR}"


@dataclasses.dataclass(frozen=True)
class TrainedState:
    """What a model's warm_start.json records (see the module docstring)."""

    bert_config: dict
    max_seq_length: int
    max_predictions_per_seq: int
    vocab_file: Optional[str]
    vocab_sha256: Optional[str]
    optimizer_type: str
    adam_bias_correction: Optional[bool]
    global_step: int
    total_steps: int  # steps of this model and all the models it was warm-started from
    # How this model started: "none" (from scratch), "init_checkpoint", WEIGHTS or
    # WEIGHTS_AND_OPTIMIZER (from base_model, a Format-Serving path).
    warm_start: str = "none"
    base_model: Optional[str] = None
    # The run's checkpoint directory (<config>/run-<inputs>): names these weights across
    # reruns, so a successor that resumes keys its own checkpoints on it, not on the Model
    # artifact's id, which a rerun of the same training changes.
    checkpoint_dir: Optional[str] = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def save_trained_state(state, trained: TrainedState, serving_model_dir: str) -> str:
    """Writes Checkpoint/ckpt-* (model and optimizer) and warm_start.json beside the SavedModel.

    Args:
      state: the training_loop.TrainingState after training.
    Returns:
      The checkpoint directory.
    """
    directory = model_checkpoint_dir(serving_model_dir)
    tf.io.gfile.makedirs(directory)
    tf.train.Checkpoint(model=state.model, optimizer=state.optimizer).write(
        f"{directory}/{CHECKPOINT_PREFIX}")
    tmp = f"{directory}/{INFO_FILE}.tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(trained.to_json())
    tf.io.gfile.rename(tmp, f"{directory}/{INFO_FILE}", overwrite=True)
    return directory


def load_trained_state(base_serving_dir: str) -> TrainedState:
    """The base model's warm_start.json.

    Raises:
      ValueError: the base model has no Checkpoint/ (not made by this project's Trainer).
    """
    path = f"{model_checkpoint_dir(base_serving_dir)}/{INFO_FILE}"
    if not tf.io.gfile.exists(path):
        raise ValueError(
            f"The base model {os.path.dirname(base_serving_dir.rstrip('/'))} has no {CHECKPOINT_DIR}/{INFO_FILE}: "
            f"it was not exported by this Trainer, so it cannot be warm-started from. Train without "
            f"retraining (bertpipe run) or bless a model made by this version.")
    with tf.io.gfile.GFile(path) as f:
        return TrainedState(**json.load(f))


def plan_warm_start(base: TrainedState, base_uri: str, current: TrainedState, phase: Optional[int] = None) -> str:
    """WEIGHTS_AND_OPTIMIZER or WEIGHTS (see the module docstring).

    Args:
      phase: the current Trainer's phase in a two-phase run (None: one phase).

    Raises:
      ValueError: vocabulary, max_seq_length or architecture differ (names both).
    """
    if base.vocab_sha256 != current.vocab_sha256:
        raise ValueError(
            f"Cannot warm-start from the base model {base_uri}: it was trained with the vocabulary "
            f"{base.vocab_file} (sha256 {str(base.vocab_sha256)[:12]}), this run has {current.vocab_file} "
            f"(sha256 {str(current.vocab_sha256)[:12]}). Use the base model's vocabulary (--vocab_file "
            f"{base.vocab_file}) or train without retraining (bertpipe run).")
    if phase is None and base.max_seq_length != current.max_seq_length:
        raise ValueError(
            f"Cannot warm-start from the base model {base_uri}: it was trained with --max_seq_length "
            f"{base.max_seq_length}, this run has {current.max_seq_length}. Use the same, or train "
            f"without retraining (bertpipe run).")
    differ = {k: (base.bert_config.get(k), current.bert_config.get(k)) for k in ARCHITECTURE_FIELDS
              if base.bert_config.get(k) != current.bert_config.get(k)}
    if differ:
        described = ", ".join(f"{k} {b} vs {c}" for k, (b, c) in sorted(differ.items()))
        raise ValueError(
            f"Cannot warm-start from the base model {base_uri}: its architecture differs from the "
            f"configured BertConfig (base vs this run: {described}). Use the base model's "
            f"bert_config.json (--bert_config_file), or train without retraining (bertpipe run).")
    if phase == 2:
        logger.info("Phase 2 restores phase 1's weights with a fresh optimizer (max_seq_length %d -> %d).",
                    base.max_seq_length, current.max_seq_length)
        return WEIGHTS
    same_optimizer = (base.optimizer_type == current.optimizer_type
                      and base.adam_bias_correction == current.adam_bias_correction)
    bias_corrected = current.adam_bias_correction or (current.adam_bias_correction is None
                                                      and current.optimizer_type == "lamb")
    if same_optimizer and not bias_corrected:
        return WEIGHTS_AND_OPTIMIZER
    logger.info("Warm start restores weights only: the optimizer %s changed or uses bias correction.",
                "settings" if not same_optimizer else current.optimizer_type)
    return WEIGHTS


def restore(training_state, base_serving_dir: str, mode: str) -> None:
    """Restores the base model's weights (and optimizer slots) into `training_state`, then
    sets the step to 0: the new run's schedule warms up again (see the module docstring)."""
    prefix = f"{model_checkpoint_dir(base_serving_dir)}/{CHECKPOINT_PREFIX}"
    optimizer = training_state.optimizer
    if mode == WEIGHTS_AND_OPTIMIZER:
        try:
            tf.train.Checkpoint(model=training_state.model, optimizer=optimizer).read(
                prefix).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            # E.g. a loss-scaled (float16) optimizer against a plain one: same weights, other slots.
            logger.warning("The base model's optimizer state does not fit this optimizer (%s); "
                           "restoring weights only.", str(e).splitlines()[0][:200])
            mode = WEIGHTS
    if mode == WEIGHTS:
        tf.train.Checkpoint(model=training_state.model).read(prefix).expect_partial() \
            .assert_existing_objects_matched()
    optimizer.iterations.assign(0)
    logger.info("Warm-started (%s) from the base model %s; the learning rate warms up again.",
                mode, os.path.dirname(base_serving_dir.rstrip('/')))
