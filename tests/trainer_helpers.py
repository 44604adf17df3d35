"""Helpers for the trainer tests: tiny TrainerParams and their file lists."""
from __future__ import annotations

import os

import tensorflow as tf

from components.trainer.params import TrainerParams, TrainingConfig
from conftest import TINY_PREDS, TINY_SEQ, tiny_bert_config


def tiny_params(checkpoint_dir: str, vocab_file: str | None = None, bert_config: dict | None = None,
                **training) -> TrainerParams:
    values = dict(train_batch_size=8, eval_batch_size=8, learning_rate=1e-3, num_train_steps=6,
                  num_warmup_steps=2, save_checkpoints_steps=3, iterations_per_loop=2, max_eval_steps=4)
    values.update(training)
    return TrainerParams(bert_config=bert_config or tiny_bert_config(), training=TrainingConfig(**values),
                         max_seq_length=TINY_SEQ, max_predictions_per_seq=TINY_PREDS,
                         checkpoint_dir=checkpoint_dir, vocab_file=vocab_file)


def split_files(records_root: str, split: str) -> list[str]:
    return sorted(tf.io.gfile.glob(os.path.join(records_root, split, "*")))
