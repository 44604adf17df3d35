"""Data checks before the first step: names the feature, the split and the fix."""
from __future__ import annotations

import os

import pytest
import tensorflow as tf

from components.trainer import input_pipeline
from components.trainer.data_checks import DataError, check_split
from conftest import TINY_PREDS, TINY_SEQ, make_example

import numpy as np


def _write(path, examples):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as w:
        for e in examples:
            w.write(e.SerializeToString())
    return path


def test_matching_records_pass(independent_records):
    check_split("train", tf.io.gfile.glob(f"{independent_records}/train/*"), TINY_SEQ, TINY_PREDS)


def test_wrong_max_seq_length_names_feature_and_flag(independent_records):
    with pytest.raises(DataError, match=r"'input_ids'.*int64_list\[32\], expected int64_list\[128\].*--max_seq_length=32"):
        check_split("train", tf.io.gfile.glob(f"{independent_records}/train/*"), 128, TINY_PREDS)


def test_wrong_max_predictions_names_the_flag(independent_records):
    with pytest.raises(DataError, match=r"'masked_lm_positions'.*--max_predictions_per_seq=5"):
        check_split("eval", tf.io.gfile.glob(f"{independent_records}/eval/*"), TINY_SEQ, 20)


def test_missing_feature_is_named(tmp_path):
    example = make_example(np.random.default_rng(0))
    del example.features.feature["next_sentence_labels"]
    path = _write(str(tmp_path / "a.tfrecord"), [example])
    with pytest.raises(DataError, match=r"'next_sentence_labels' is missing.*length 1"):
        check_split("train", [path], TINY_SEQ, TINY_PREDS)


def test_empty_split_is_refused(tmp_path):
    path = _write(str(tmp_path / "empty.tfrecord"), [])
    with pytest.raises(DataError, match="eval split is empty"):
        check_split("eval", [path], TINY_SEQ, TINY_PREDS)
    with pytest.raises(DataError, match="train split has no files"):
        check_split("train", [], TINY_SEQ, TINY_PREDS)


def test_gzip_shards_as_import_example_gen_writes_them(tmp_path, independent_records):
    plain = tf.io.gfile.glob(f"{independent_records}/eval/*")[0]
    gz = str(tmp_path / "data_tfrecord-00000-of-00001.gz")
    with tf.io.TFRecordWriter(gz, options="GZIP") as w:
        for record in tf.data.TFRecordDataset(plain):
            w.write(record.numpy())
    check_split("eval", [gz], TINY_SEQ, TINY_PREDS)
    batch = next(iter(input_pipeline.make_dataset([gz], 4, TINY_SEQ, TINY_PREDS, is_training=False)))
    assert batch["input_ids"].dtype == tf.int32 and batch["input_ids"].shape == (4, TINY_SEQ)
    assert batch["masked_lm_weights"].dtype == tf.float32 and batch["masked_lm_weights"].shape == (4, TINY_PREDS)
    assert batch["next_sentence_labels"].shape == (4, 1)


def test_eval_pass_is_deterministic_and_drops_the_remainder(independent_records):
    files = tf.io.gfile.glob(f"{independent_records}/eval/*")  # 48 examples
    first = [b["input_ids"].numpy() for b in input_pipeline.make_dataset(files, 10, TINY_SEQ, TINY_PREDS, False)]
    second = [b["input_ids"].numpy() for b in input_pipeline.make_dataset(files, 10, TINY_SEQ, TINY_PREDS, False)]
    assert len(first) == 4  # 48 // 10: fixed shapes, the last 8 dropped
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
