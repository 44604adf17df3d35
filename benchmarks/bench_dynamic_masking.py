#!/usr/bin/env python3
"""Dynamic masking's costs: disk use against static masks, and input speed against the Trainer (not a test).

    .venv/bin/python benchmarks/bench_dynamic_masking.py [--records_dir DIR] [--trainer_seqs_per_s X]

1. Disk: the shipped corpus's train/ records at max_seq_length 128, static (dupe_factor 10, the
   original's default) against dynamic (unmasked, dupe_factor 1).
2. Speed at max_seq_length 512 (80 predictions): examples/s of the input pipeline in training
   mode (make_dataset: shuffle, per-example parse and dynamic masking, batches of 8), with and
   without whole-word masking, and of the static path for reference; median of 5 runs of 40
   batches after a warm-up. Against what the Trainer consumes at 512: BERT-base, this Trainer's
   default recipe, one timed step of 2 sequences after a warm-up step (or --trainer_seqs_per_s,
   e.g. from bench_training.py --throughput). The goal: input >= 10x the Trainer.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from input_rate import median_examples_per_s  # noqa: E402


def tree_bytes(files) -> int:
    return sum(os.path.getsize(f) for f in files)


def count_records(files) -> int:
    import tensorflow as tf
    return sum(1 for f in files for _ in tf.data.TFRecordDataset(f))


def input_rate(dataset, batch: int, batches: int = 40, repeats: int = 5) -> float:
    return median_examples_per_s(dataset, batch, batches, repeats, warmup=10)


def trainer_rate_512(records: dict) -> float:
    """BERT-base, default recipe, sequences/s at 512 (2 per step)."""
    import tensorflow as tf
    import tf_keras as keras
    from components.bert.config import load_preset
    from components.trainer import input_pipeline, precision, training_loop
    from components.trainer.params import TrainerParams, TrainingConfig
    from components.trainer.run_fn import build_state
    policy = precision.choose_precision("auto", "cpu")
    keras.mixed_precision.set_global_policy(policy)
    config = load_preset("bert_base")
    params = TrainerParams(bert_config=config.to_dict(), training=TrainingConfig(train_batch_size=2),
                           max_seq_length=512, max_predictions_per_seq=80, checkpoint_dir=tempfile.mkdtemp())
    strategy = tf.distribute.get_strategy()
    state = build_state(config, params, strategy)
    ds = input_pipeline.make_dataset(records["train"], 2, 512, 80, is_training=True, seed=1)
    iterator = iter(strategy.distribute_datasets_from_function(lambda ctx: ds))
    chunk = training_loop.make_train_chunk(state, training_loop.LoopSettings(
        num_train_steps=10 ** 9, steps_per_execution=1, save_checkpoints_steps=10 ** 9, keep_checkpoint_max=1,
        global_batch_size=2))
    chunk(iterator, tf.constant(1))
    t = time.perf_counter()
    chunk(iterator, tf.constant(1))
    rate = 2 / (time.perf_counter() - t)
    keras.mixed_precision.set_global_policy("float32")
    return rate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records_dir", help="cache of the shipped-corpus records (default: a temp dir)")
    parser.add_argument("--trainer_seqs_per_s", type=float, help="the Trainer's sequences/s at 512 (default: measure)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)
    from components.trainer import input_pipeline
    from components.trainer.dynamic_masking import rule_from_vocab
    from shipped_records import shipped_records

    cache = args.records_dir or tempfile.mkdtemp(prefix="bench-records-")
    static = shipped_records(cache, 128, 20, dupe_factor=10)
    dynamic = shipped_records(cache, 128, 20, dupe_factor=1, dynamic_masking=True)
    s_bytes, d_bytes = tree_bytes(static["train"]), tree_bytes(dynamic["train"])
    s_n, d_n = count_records(static["train"]), count_records(dynamic["train"])
    print("Disk, shipped corpus train/ at max_seq_length 128:")
    print(f"  static  (dupe_factor 10): {s_bytes / 1e6:8.2f} MB, {s_n:6d} instances, {s_bytes / s_n:6.0f} B each")
    print(f"  dynamic (dupe_factor 1):  {d_bytes / 1e6:8.2f} MB, {d_n:6d} instances, {d_bytes / d_n:6.0f} B each")
    print(f"  static / dynamic: {s_bytes / d_bytes:.1f}x smaller on disk ({s_n / d_n:.2f}x fewer instances, "
          f"{(s_bytes / s_n) / (d_bytes / d_n):.2f}x smaller records: no masked_lm_* features)")

    static512 = shipped_records(cache, 512, 80, dupe_factor=1)
    dynamic512 = shipped_records(cache, 512, 80, dupe_factor=1, dynamic_masking=True)
    batch = 8
    rates = {}
    for name, whole_word in (("dynamic", False), ("dynamic, whole-word", True)):
        rule = rule_from_vocab(dynamic512["vocab"], 80, 0.15, whole_word)
        rates[name] = input_rate(input_pipeline.make_dataset(dynamic512["train"], batch, 512, 80, is_training=True,
                                                             seed=1, dynamic_masking=rule), batch)
    rates["static (reference)"] = input_rate(input_pipeline.make_dataset(static512["train"], batch, 512, 80,
                                                                         is_training=True, seed=1), batch)
    trainer = args.trainer_seqs_per_s or trainer_rate_512(static512)
    print(f"\nInput pipeline at max_seq_length 512, 80 predictions, batch {batch}, training mode "
          f"(median of 5 x 40 batches), against the Trainer's {trainer:.2f} seq/s (BERT-base, default recipe"
          f"{', given' if args.trainer_seqs_per_s else ', measured'}):")
    for name, rate in rates.items():
        print(f"  {name:<20} {rate:9,.0f} examples/s = {rate / trainer:7,.0f}x the Trainer")
    worst = min(rates["dynamic"], rates["dynamic, whole-word"]) / trainer
    print(f"  goal: dynamic masking feeds >= 10x what the Trainer consumes: {worst:,.0f}x -> "
          f"{'MET' if worst >= 10 else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
