"""Dynamic masking: unmasked records from the data job, masked by the Trainer's input pipeline
with the original's rule, anew each epoch, the same for the same (seed, epoch, example)."""
from __future__ import annotations

import dataclasses
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from components.pretraining_data import beam_job, schema
from components.pretraining_data import vocab as vocab_lib
from components.pretraining_data.options import PretrainingDataOptions
from components.trainer import input_pipeline, run_fn
from components.trainer.data_checks import DataError, check_split
from components.trainer.dynamic_masking import mask_example, rule_from_vocab
from components.trainer.params import DynamicMasking
from conftest import REPO_ROOT, corpus_slice, tiny_bert_config
from trainer_helpers import tiny_params

SEQ, PRED, DUPE = 128, 20, 5
SEED = 12345
IN_PROCESS = ["--direct_num_workers=1"]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The shipped corpus as static records (dupe_factor 5) and as dynamic ones (unmasked
    train/, dupe_factor 1), with a vocabulary learned from its first 100 kB."""
    root = tmp_path_factory.mktemp("shipped")
    vocab = str(root / "vocab.txt")
    vocab_lib.learn_vocabulary([corpus_slice(str(root / "slice.txt"), 100_000)], vocab, 1000, do_lower_case=True)
    corpus = [os.path.join(REPO_ROOT, "data", "corpus", "python_docs.txt")]
    static = PretrainingDataOptions(max_seq_length=SEQ, max_predictions_per_seq=PRED, dupe_factor=DUPE,
                                    num_shards=2, eval_fraction=0.1, random_seed=SEED)
    dynamic = dataclasses.replace(static, dupe_factor=1, dynamic_masking=True)
    beam_job.run_prepare_data(corpus, vocab, str(root / "static"), static, IN_PROCESS)
    beam_job.run_prepare_data(corpus, vocab, str(root / "dynamic"), dynamic, IN_PROCESS)
    return root, vocab


def _files(root, kind, split):
    return sorted(glob.glob(str(root / kind / split / "*.tfrecord")))


def _examples(files):
    return [tf.train.Example.FromString(r.numpy()) for f in files for r in tf.data.TFRecordDataset(f)]


def test_train_records_are_unmasked_and_written_once_eval_stays_masked(shipped):
    root, _ = shipped
    dynamic_train = _examples(_files(root, "dynamic", "train"))
    assert set(dynamic_train[0].features.feature) == set(schema.UNMASKED_FEATURE_NAMES)
    assert set(_examples(_files(root, "dynamic", "eval"))[0].features.feature) == set(schema.FEATURE_NAMES)
    static_train = _examples(_files(root, "static", "train"))
    assert len(static_train) / len(dynamic_train) == pytest.approx(DUPE, rel=0.05)
    sizes = {kind: sum(os.path.getsize(f) for f in _files(root, kind, "train")) for kind in ("static", "dynamic")}
    # dupe_factor times fewer instances, and each without its masked_lm_* features.
    assert sizes["static"] / sizes["dynamic"] >= DUPE


def _prediction_stats(batches, mask_id):
    """Per prediction: share replaced by [MASK], kept, random; per example: predictions / length."""
    mask = kept = total = 0
    per_length = []
    for b in batches:
        weights = b["masked_lm_weights"] > 0
        at = np.take_along_axis(b["input_ids"], b["masked_lm_positions"], 1)
        mask += np.sum((at == mask_id) & weights)
        kept += np.sum((at == b["masked_lm_ids"]) & weights)
        total += np.sum(weights)
        per_length.extend(weights.sum(1) / b["input_mask"].sum(1))
    return {"mask": mask / total, "kept": kept / total, "random": 1 - (mask + kept) / total,
            "targets_per_token": float(np.mean(per_length)), "predictions": int(total)}


def _batches(dataset, limit=10_000):
    return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(limit)]


def test_dynamic_masks_have_the_statistics_of_the_static_ones(shipped):
    root, vocab = shipped
    rule = rule_from_vocab(vocab, PRED, 0.15, whole_word=False)
    static = _batches(input_pipeline.make_dataset(_files(root, "static", "train"), 64, SEQ, PRED, is_training=False))
    dynamic_files = _files(root, "dynamic", "train")
    dynamic = _batches(input_pipeline.make_dataset(dynamic_files, 64, SEQ, PRED, is_training=True, seed=3,
                                                   dynamic_masking=rule), limit=len(static) // DUPE)
    s, d = _prediction_stats(static, rule.mask_id), _prediction_stats(dynamic, rule.mask_id)
    print(f"static {s}\ndynamic {d}")
    assert d["predictions"] > 20_000
    assert d["mask"] == pytest.approx(0.8, abs=0.01) and s["mask"] == pytest.approx(d["mask"], abs=0.01)
    assert d["kept"] == pytest.approx(0.1, abs=0.01) and s["kept"] == pytest.approx(d["kept"], abs=0.01)
    assert d["random"] == pytest.approx(0.1, abs=0.01) and s["random"] == pytest.approx(d["random"], abs=0.01)
    assert d["targets_per_token"] == pytest.approx(s["targets_per_token"], abs=0.005)
    assert 0.13 < d["targets_per_token"] < 0.16
    for b in dynamic:
        lengths = b["input_mask"].sum(1)
        expected = np.clip(np.round(lengths * 0.15), 1, PRED)  # numpy rounds half to even, as the original
        np.testing.assert_array_equal(b["masked_lm_weights"].sum(1), expected)
        original = b["masked_lm_ids"]
        real = b["masked_lm_weights"] > 0
        assert not np.any(real & np.isin(original, [rule.cls_id, rule.sep_id]))  # never [CLS]/[SEP]
        for row in range(len(real)):  # ascending and distinct
            assert np.all(np.diff(b["masked_lm_positions"][row][real[row]]) > 0)


def test_whole_word_masking_takes_every_piece_of_a_word(shipped):
    root, vocab = shipped
    rule = rule_from_vocab(vocab, PRED, 0.15, whole_word=True)
    batches = _batches(input_pipeline.make_dataset(_files(root, "dynamic", "train"), 64, SEQ, PRED,
                                                   is_training=False, dynamic_masking=rule), limit=20)
    pieces = 0
    for b in batches:
        for row in range(len(b["input_ids"])):
            n = int(b["masked_lm_weights"][row].sum())
            chosen = set(b["masked_lm_positions"][row, :n].tolist())
            original = b["input_ids"][row].copy()
            original[b["masked_lm_positions"][row, :n]] = b["masked_lm_ids"][row, :n]
            length = int(b["input_mask"][row].sum())
            assert 1 <= n <= PRED
            for j in range(1, length):  # a "##" piece is chosen exactly when its word's first piece is
                if rule.is_continuation[original[j]] and original[j - 1] not in (rule.cls_id, rule.sep_id):
                    assert (j in chosen) == (j - 1 in chosen)
                    pieces += 1
    assert pieces > 100


def _originals(files):
    """{unmasked input_ids bytes: (file index, record index)}."""
    index = {}
    for f, path in enumerate(files):
        for r, ex in enumerate(_examples([path])):
            index[np.array(ex.features.feature["input_ids"].int64_list.value, np.int32).tobytes()] = (f, r)
    return index


@pytest.fixture(scope="module")
def small_unmasked(shipped, tmp_path_factory):
    """30 unmasked records in each of 2 shards, cut from the shipped corpus's dynamic records."""
    root, vocab = shipped
    out = tmp_path_factory.mktemp("small_unmasked")
    files = []
    for i, path in enumerate(_files(root, "dynamic", "train")):
        files.append(str(out / f"part-{i}.tfrecord"))
        with tf.io.TFRecordWriter(files[-1]) as w:
            for record in tf.data.TFRecordDataset(path).take(30):
                w.write(record.numpy())
    return files, rule_from_vocab(vocab, PRED, 0.15, whole_word=False)


def test_masks_are_keyed_by_seed_epoch_and_example(small_unmasked):
    files, rule = small_unmasked
    originals = _originals(files)
    spec = schema.unmasked_feature_spec(SEQ)
    parsed = {key: tf.io.parse_single_example(r, spec) for key, r in
              (((f, i), r) for f, path in enumerate(files) for i, r in enumerate(tf.data.TFRecordDataset(path)))}
    batches = _batches(input_pipeline.make_dataset(files, 8, SEQ, PRED, is_training=True, seed=SEED,
                                                   dynamic_masking=rule), limit=3 * 60 // 8)
    masker = tf.function(lambda features, key: mask_example(features, key, SEED, rule))
    used, masks = set(), {}
    for b in batches:
        for row in range(8):
            n = int(b["masked_lm_weights"][row].sum())
            original = b["input_ids"][row].copy()
            original[b["masked_lm_positions"][row, :n]] = b["masked_lm_ids"][row, :n]
            f, r = originals[original.tobytes()]
            matches = []
            for epoch in range(8):  # the shuffle buffer (100) spans more than one epoch (60)
                expected = masker({k: tf.cast(v, tf.int32) for k, v in parsed[(f, r)].items()},
                                  tf.constant([epoch, f, r], tf.int64))
                if np.array_equal(expected["input_ids"].numpy(), b["input_ids"][row]) and np.array_equal(
                        expected["masked_lm_positions"].numpy(), b["masked_lm_positions"][row]):
                    matches.append(epoch)
            assert len(matches) == 1, (f, r, matches)  # exactly one epoch's mask, never another seed's
            assert (f, r, matches[0]) not in used
            used.add((f, r, matches[0]))
            masks.setdefault((f, r), []).append(b["masked_lm_positions"][row].tobytes())
    # A new epoch draws a new mask (almost always: identical draws are possible, but rare).
    seen_twice = [m for m in masks.values() if len(m) >= 2]
    assert len(seen_twice) > 30 and sum(m[0] != m[1] for m in seen_twice) >= 0.9 * len(seen_twice)


def test_resumed_iterator_gives_the_same_masks(small_unmasked, tmp_path):
    files, rule = small_unmasked

    def dataset():
        return input_pipeline.make_dataset(files, 8, SEQ, PRED, is_training=True, seed=SEED, dynamic_masking=rule)

    it = iter(dataset())
    for _ in range(9):  # past the first epoch (60 records)
        next(it)
    path = tf.train.Checkpoint(input=it).save(str(tmp_path / "ckpt"))
    straight = [next(it) for _ in range(10)]
    resumed_it = iter(dataset())
    tf.train.Checkpoint(input=resumed_it).restore(path).assert_consumed()
    resumed = [next(resumed_it) for _ in range(10)]
    for a, b in zip(straight, resumed):
        for name in a:
            np.testing.assert_array_equal(a[name].numpy(), b[name].numpy())


def test_two_input_pipelines_share_a_global_batch_as_one_does(small_unmasked):
    files, rule = small_unmasked
    one = next(iter(input_pipeline.make_dataset(files, 8, SEQ, PRED, is_training=True, seed=SEED,
                                                dynamic_masking=rule)))
    halves = [next(iter(input_pipeline.make_dataset(
        files, 4, SEQ, PRED, is_training=True, seed=SEED, dynamic_masking=rule,
        input_context=tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i,
                                                 num_replicas_in_sync=2)))) for i in range(2)]
    for name in one:
        np.testing.assert_array_equal(one[name].numpy(), np.concatenate([h[name].numpy() for h in halves]))


def test_records_and_mode_must_agree(shipped):
    root, _ = shipped
    with pytest.raises(DataError, match="unmasked.*--dynamic_masking"):
        check_split("train", _files(root, "dynamic", "train"), SEQ, PRED)
    with pytest.raises(DataError, match="already masked.*prepare-data --dynamic_masking"):
        check_split("train", _files(root, "static", "train"), SEQ, PRED, masked=False)
    check_split("train", _files(root, "dynamic", "train"), SEQ, PRED, masked=False)
    with pytest.raises(ValueError, match="dupe_factor 1"):
        PretrainingDataOptions(dupe_factor=10, dynamic_masking=True).validate()


def test_pretrain_with_dynamic_masking_on_the_data_jobs_records(shipped, tmp_path):
    root, vocab = shipped
    params = dataclasses.replace(
        tiny_params(str(tmp_path / "ckpt"), vocab_file=vocab, num_train_steps=4, max_eval_steps=2,
                    bert_config=tiny_bert_config(vocab_size=None, max_position_embeddings=SEQ)),
        max_seq_length=SEQ, max_predictions_per_seq=PRED, dynamic_masking=DynamicMasking(0.15, True))
    metrics = run_fn.pretrain(params, _files(root, "dynamic", "train"), _files(root, "dynamic", "eval"),
                              str(tmp_path / "serving"), str(tmp_path / "run"))
    assert metrics["global_step"] == 4 and np.isfinite(metrics["masked_lm_loss"])
    assert metrics["eval_scope"] == "first 2 batches"


def test_flags_turn_on_dynamic_masking_with_one_copy_and_reach_the_trainer(tmp_path):
    import argparse
    import json

    from components.pretraining_data import cli as data_cli
    from components.trainer.params import TrainerParams
    from pipeline import cli
    from pipeline.config import bert_config_dict
    from pipeline.pipeline import create_pipeline

    parser = argparse.ArgumentParser()
    data_cli.register(parser.add_subparsers())
    args = parser.parse_args(["prepare-data", "--input_file=a", "--vocab_file=v", "--output_dir=d",
                              "--dynamic_masking"])
    assert data_cli.options_from_args(args) == PretrainingDataOptions(dupe_factor=1, dynamic_masking=True)
    args = parser.parse_args(["prepare-data", "--input_file=a", "--vocab_file=v", "--output_dir=d"])
    assert data_cli.options_from_args(args).dupe_factor == 10

    config = cli.config_from_args(cli.build_parser().parse_args(["run", "--dynamic_masking",
                                                                 "--do_whole_word_mask"]))
    assert config.data.dynamic_masking and config.data.dupe_factor == 1
    pipeline = create_pipeline(config, bert_config_dict(config), str(tmp_path / "root"), str(tmp_path / "serving"))
    trainer = next(c for c in pipeline.components if c.id == "BertTrainer")
    params = TrainerParams.from_custom_config(json.loads(trainer.exec_properties["custom_config"]))
    assert params.dynamic_masking == DynamicMasking(masked_lm_prob=0.15, do_whole_word_mask=True)
    static = cli.config_from_args(cli.build_parser().parse_args(["run"]))
    trainer = next(c for c in create_pipeline(static, bert_config_dict(static), str(tmp_path / "r2"),
                                              str(tmp_path / "s2")).components if c.id == "BertTrainer")
    assert TrainerParams.from_custom_config(json.loads(trainer.exec_properties["custom_config"])).dynamic_masking is None
