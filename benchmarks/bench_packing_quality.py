#!/usr/bin/env python3
"""Throughput mode holds quality: tiny BERT trained for the same real tokens, packed or not (not a test).

    .venv/bin/python benchmarks/bench_packing_quality.py [--steps 800] [--seeds 1,2,3] [--records_dir DIR]

On the shipped corpus's records (max_seq_length 128, 20 predictions, dupe_factor 5, the
vocabulary of 4000 learned from the corpus), bert_tiny (L2 H128, vocab from the vocabulary)
trains `--steps` steps in each mode and seed:
  faithful: 32 instances per step, one per row (padded);
  packed:   rows packing up to 3 instances (throughput mode's input), with the number of rows
            per step chosen so that a step holds the same real tokens as a faithful one
            (from the tokens per row both pipelines give on their first 30 batches).
Same learning rate schedule (--learning_rate, default 2e-3, 10% warm-up), float32, no XLA (the comparison is of the
packing, not of the precision). Then do_eval on the whole eval split, which is never packed,
gives masked-LM and next-sentence accuracy. Prints per run the real tokens trained and the
accuracies, then per mode the mean and standard deviation over the seeds, and the difference
of the means against the seeds' spread.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SEQ, PREDS, BATCH, ROWS_PER_PACK = 128, 20, 32, 3


def tokens_per_row(dataset, batches: int = 30) -> float:
    import tensorflow as tf
    total = rows = 0
    for b in dataset.take(batches):
        total += float(tf.reduce_sum(tf.cast(b["input_mask"] > 0, tf.float32)))
        rows += int(b["input_mask"].shape[0])
    return total / rows


def train_and_eval(records: dict, packed_rows: int, steps: int, seed: int, learning_rate: float) -> dict:
    """packed_rows: 0 = faithful (BATCH instances per step), else rows per step, packed."""
    import tensorflow as tf
    import tf_keras as keras
    from components.bert.config import BertConfig, load_preset
    from components.trainer import input_pipeline, training_loop
    from components.trainer.params import TrainerParams, TrainingConfig
    from components.trainer.run_fn import build_state

    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(seed)
    with open(records["vocab"]) as f:
        vocab_size = sum(1 for line in f if line.strip())
    values = load_preset("bert_tiny").to_dict()
    values["vocab_size"] = vocab_size
    config = BertConfig.from_dict(values)
    rows = packed_rows or BATCH
    params = TrainerParams(bert_config=config.to_dict(), training=TrainingConfig(
        train_batch_size=rows, learning_rate=learning_rate, num_train_steps=steps, num_warmup_steps=steps // 10, seed=seed),
        max_seq_length=SEQ, max_predictions_per_seq=PREDS, checkpoint_dir=tempfile.mkdtemp())
    strategy = tf.distribute.get_strategy()
    state = build_state(config, params, strategy)
    dataset = input_pipeline.make_dataset(records["train"], rows, SEQ, PREDS, is_training=True, seed=seed,
                                          pack_sequences=ROWS_PER_PACK if packed_rows else 0)
    iterator = iter(strategy.distribute_datasets_from_function(lambda ctx: dataset))
    settings = training_loop.LoopSettings(num_train_steps=steps, steps_per_execution=50,
                                          save_checkpoints_steps=steps, keep_checkpoint_max=1,
                                          global_batch_size=rows)
    chunk = training_loop.make_train_chunk(state, settings)
    tokens = instances = 0.0
    started = time.perf_counter()
    done = 0
    while done < steps:
        n = min(50, steps - done)
        sums, finite = chunk(iterator, tf.constant(n))
        if not bool(finite):
            raise RuntimeError("non-finite loss")
        tokens += float(sums["real_tokens"])
        instances += float(sums["examples"])
        done += n
    seconds = time.perf_counter() - started
    eval_ds = input_pipeline.make_dataset(records["eval"], 64, SEQ, PREDS, is_training=False, pad_final_batch=True)
    metrics = training_loop.evaluate(state, eval_ds, 10 ** 6)
    return {"tokens": tokens, "instances": instances, "seconds": seconds,
            "mlm_acc": metrics["masked_lm_accuracy"], "nsp_acc": metrics["next_sentence_accuracy"],
            "mlm_loss": metrics["masked_lm_loss"],
            "eval_examples": metrics["eval_examples"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--records_dir", help="cache of the shipped-corpus records (default: a temp dir)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)
    from components.trainer import input_pipeline
    from shipped_records import padding_fraction, shipped_records

    records = shipped_records(args.records_dir or tempfile.mkdtemp(prefix="bench-records-"), SEQ, PREDS,
                              dupe_factor=5)
    unpacked = tokens_per_row(input_pipeline.make_dataset(records["train"], BATCH, SEQ, PREDS, is_training=True,
                                                          seed=1))
    packed = tokens_per_row(input_pipeline.make_dataset(records["train"], BATCH, SEQ, PREDS, is_training=True,
                                                        seed=1, pack_sequences=ROWS_PER_PACK))
    rows = max(1, round(BATCH * unpacked / packed))
    print(f"bench_packing_quality: shipped corpus, seq {SEQ}, padding {padding_fraction(records['train'], SEQ):.1%}; "
          f"real tokens per row {unpacked:.1f} unpadded rows, {packed:.1f} packed -> {rows} packed rows per step "
          f"for {BATCH} instances; {args.steps} steps, learning rate {args.learning_rate}, bert_tiny, seeds {args.seeds}", flush=True)
    results = {"faithful": [], "packed": []}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for mode, packed_rows in (("faithful", 0), ("packed", rows)):
            r = train_and_eval(records, packed_rows, args.steps, seed, args.learning_rate)
            results[mode].append(r)
            print(f"  seed {seed} {mode:<8}: {r['tokens']:>10,.0f} real tokens, {r['instances']:>7,.0f} instances, "
                  f"{r['seconds']:.0f} s; eval masked_lm_accuracy {r['mlm_acc']:.4f}, masked_lm_loss {r['mlm_loss']:.4f}, "
                  f"next_sentence_accuracy {r['nsp_acc']:.4f} ({r['eval_examples']} examples)", flush=True)
    print("\nmode      real tokens (mean)  masked_lm_accuracy mean +- std   next_sentence_accuracy mean +- std")
    summary = {}
    for mode, runs in results.items():
        acc = [r["mlm_acc"] for r in runs]
        nsp = [r["nsp_acc"] for r in runs]
        summary[mode] = (statistics.mean(acc), statistics.stdev(acc) if len(acc) > 1 else 0.0)
        print(f"{mode:<9} {statistics.mean(r['tokens'] for r in runs):>18,.0f}  {summary[mode][0]:.4f} +- "
              f"{summary[mode][1]:.4f}                {statistics.mean(nsp):.4f} +- "
              f"{statistics.stdev(nsp) if len(nsp) > 1 else 0.0:.4f}")
    for mode, runs in results.items():
        loss = [r["mlm_loss"] for r in runs]
        print(f"{mode:<9} masked_lm_loss {statistics.mean(loss):.4f} +- {statistics.stdev(loss) if len(loss) > 1 else 0.0:.4f}")
    diff = summary["packed"][0] - summary["faithful"][0]
    noise = max(summary["packed"][1], summary["faithful"][1])
    print(f"packed - faithful masked_lm_accuracy: {diff:+.4f} (largest seed std {noise:.4f}) -> "
          f"{'within noise' if abs(diff) <= 2 * noise else 'OUTSIDE 2 std'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
