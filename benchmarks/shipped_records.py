"""The shipped corpus as pretraining records, for the benchmarks (not a test).

`shipped_records(directory, seq, preds, ...)` learns a WordPiece vocabulary from
data/corpus/python_docs.txt once (the pipeline's default size, 4000) and runs the data
job (prepare-data, DirectRunner, one worker) on it; results are cached under `directory`
by their options, so several benchmark children share one set.
"""
from __future__ import annotations

import glob
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "data", "corpus", "python_docs.txt")


def shipped_vocab(directory: str, vocab_size: int = 4000) -> str:
    from components.pretraining_data import vocab as vocab_lib
    path = os.path.join(directory, f"vocab-{vocab_size}.txt")
    if not os.path.exists(path):
        vocab_lib.learn_vocabulary([CORPUS], path, vocab_size, do_lower_case=True)
    return path


def shipped_records(directory: str, max_seq_length: int, max_predictions_per_seq: int, dupe_factor: int = 1,
                    dynamic_masking: bool = False, eval_fraction: float = 0.1, seed: int = 12345) -> dict:
    """{"train": [files], "eval": [files], "vocab": path, "dir": records dir} of the shipped corpus."""
    from components.pretraining_data import beam_job
    from components.pretraining_data.options import PretrainingDataOptions
    options = PretrainingDataOptions(max_seq_length=max_seq_length, max_predictions_per_seq=max_predictions_per_seq,
                                     dupe_factor=dupe_factor, dynamic_masking=dynamic_masking, num_shards=2,
                                     eval_fraction=eval_fraction, random_seed=seed).validate()
    vocab = shipped_vocab(directory)
    name = "records-" + "-".join(f"{k}{v}" for k, v in sorted(json.loads(options.to_json()).items()))
    out = os.path.join(directory, name)
    if not os.path.isdir(out):
        beam_job.run_prepare_data([CORPUS], vocab, out, options, ["--direct_num_workers=1"])
    return {"train": sorted(glob.glob(os.path.join(out, "train", "*.tfrecord"))),
            "eval": sorted(glob.glob(os.path.join(out, "eval", "*.tfrecord"))), "vocab": vocab, "dir": out}


def padding_fraction(files: list[str], max_seq_length: int) -> float:
    """1 - real tokens / (records x max_seq_length): the share of compute padding takes unpacked."""
    import tensorflow as tf
    real = count = 0
    for path in files:
        for record in tf.data.TFRecordDataset(path):
            example = tf.train.Example.FromString(record.numpy())
            real += sum(example.features.feature["input_mask"].int64_list.value)
            count += 1
    return 1.0 - real / (count * max_seq_length)
