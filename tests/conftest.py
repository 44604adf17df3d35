"""Shared fixtures: tiny records written by an independent writer, tiny BERT configs.

The CPU is split into two logical devices before TensorFlow starts, so a 2-replica
MirroredStrategy can run here (it must happen before the first op runs).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tiny end-to-end configuration: flags of `bertpipe run` and `bertpipe compile` alike...
TINY_PIPELINE_FLAGS = [
    "--vocab_size", "400", "--max_seq_length", "32", "--max_predictions_per_seq", "5", "--dupe_factor", "1",
    "--num_shards", "2", "--eval_fraction", "0.2", "--train_batch_size", "8", "--eval_batch_size", "8",
    "--num_train_steps", "12", "--num_warmup_steps", "2", "--save_checkpoints_steps", "6",
    # Enough eval steps for the whole split, which is not a multiple of the batch size (checked
    # in test_pipeline_e2e): do_eval's padded last batch must give the Evaluator's figures.
    "--iterations_per_loop", "6", "--max_eval_steps", "100", "--learning_rate", "1e-3",
    "--min_masked_lm_accuracy", "0.0",
]
# ...and how `bertpipe run` runs it.
TINY_RUN_FLAGS = TINY_PIPELINE_FLAGS + ["--direct_num_workers", "1"]
TINY_VOCAB_SIZE = 100
TINY_SEQ = 32
TINY_PREDS = 5


def tiny_bert_config(**changes) -> dict:
    """BERT with 2 layers, hidden 32, 4 heads; no dropout so runs are deterministic."""
    values = {"vocab_size": TINY_VOCAB_SIZE, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 64, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
              "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 64, "type_vocab_size": 2,
              "initializer_range": 0.02}
    values.update(changes)
    return values


def make_example(rng: np.random.Generator, max_seq_length: int = TINY_SEQ, max_predictions_per_seq: int = TINY_PREDS,
                 vocab_size: int = TINY_VOCAB_SIZE) -> tf.train.Example:
    """One record of the create_pretraining_data schema, made with plain tf.train.Example."""
    length = int(rng.integers(max_seq_length // 2, max_seq_length + 1))
    ids = np.zeros(max_seq_length, np.int64)
    ids[:length] = rng.integers(5, vocab_size, length)
    ids[0], ids[length - 1] = 2, 3  # [CLS] ... [SEP]
    mask = (np.arange(max_seq_length) < length).astype(np.int64)
    segments = np.zeros(max_seq_length, np.int64)
    segments[length // 2:length] = 1
    num_preds = int(rng.integers(1, max_predictions_per_seq + 1))
    positions = np.zeros(max_predictions_per_seq, np.int64)
    positions[:num_preds] = np.sort(rng.choice(np.arange(1, length - 1), num_preds, replace=False))
    labels = np.zeros(max_predictions_per_seq, np.int64)
    labels[:num_preds] = ids[positions[:num_preds]]
    ids[positions[:num_preds]] = 4  # [MASK]
    weights = np.zeros(max_predictions_per_seq, np.float32)
    weights[:num_preds] = 1.0

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))

    return tf.train.Example(features=tf.train.Features(feature={
        "input_ids": ints(ids), "input_mask": ints(mask), "segment_ids": ints(segments),
        "masked_lm_positions": ints(positions), "masked_lm_ids": ints(labels),
        "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(value=weights.tolist())),
        "next_sentence_labels": ints([int(rng.integers(0, 2))]),
    }))


def write_records(path: str, count: int, seed: int, **shape) -> str:
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(count):
            writer.write(make_example(rng, **shape).SerializeToString())
    return path


@pytest.fixture(scope="session")
def two_cpu_replicas() -> tf.distribute.MirroredStrategy:
    """One MirroredStrategy over the two logical CPUs, shared by every test that needs one:
    two strategies in one process can draw the same collective instance keys and then
    fail with a shape mismatch between unrelated all-reduces."""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(scope="session")
def independent_records(tmp_path_factory) -> str:
    """train/ (2 shards x 64) and eval/ (1 x 48) of random tokens, vocab 100, seq 32, 5 predictions."""
    root = str(tmp_path_factory.mktemp("independent_records"))
    write_records(os.path.join(root, "train", "part-0.tfrecord"), 64, seed=1)
    write_records(os.path.join(root, "train", "part-1.tfrecord"), 64, seed=2)
    write_records(os.path.join(root, "eval", "part-0.tfrecord"), 48, seed=3)
    return root


@pytest.fixture(scope="session")
def tiny_vocab_file(tmp_path_factory) -> str:
    """A vocab of exactly 100 entries: the five specials, then made-up pieces."""
    path = str(tmp_path_factory.mktemp("vocab") / "vocab.txt")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"tok{i}" for i in range(TINY_VOCAB_SIZE - 5)]
    with open(path, "w") as f:
        f.write("\n".join(tokens) + "\n")
    return path


def corpus_slice(path: str, max_bytes: int = 40_000) -> str:
    """The first documents of the shipped corpus, cut at a document boundary."""
    with open(os.path.join(REPO_ROOT, "data", "corpus", "python_docs.txt"), encoding="utf-8") as f:
        text = f.read(max_bytes * 2)
    cut = text.rfind("\n\n", 0, max_bytes)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text[:cut + 1])
    return path


@pytest.fixture(scope="session")
def corpus_run(tmp_path_factory):
    """One LocalDagRunner run of the tiny configuration on the corpus slice (`corpus.txt` in
    the returned directory), shared by the tests that check it and those that compare with it."""
    from pipeline import cli  # pylint: disable=import-outside-toplevel

    out = tmp_path_factory.mktemp("corpus_run")
    corpus = corpus_slice(str(out / "corpus.txt"))
    status = cli.main(["run", "--corpus", corpus, "--output_dir", str(out)] + TINY_RUN_FLAGS)
    assert status == 0
    return out


@pytest.fixture(autouse=True)
def _project_loggers_propagate():
    """`bertpipe`'s main() gives the project's loggers their own handler and stops them
    propagating to the root logger, which hides their records from pytest's caplog. main()
    runs in tests and in session fixtures (set up before this fixture), so each test starts
    with the loggers reset: no handler of main()'s, propagating, level unset."""
    import logging

    for name in ("components", "pipeline", "kubeflow"):
        project_logger = logging.getLogger(name)
        project_logger.handlers[:] = [h for h in project_logger.handlers if not getattr(h, "bertpipe_cli", False)]
        project_logger.setLevel(logging.NOTSET)
        project_logger.propagate = True
    yield


def cut_corpus_spans(directory: str, num_spans: int = 3, span_bytes: int = 15_000, first_span: int = 1) -> list[str]:
    """The shipped corpus's first documents cut into `num_spans` spans of ~span_bytes each, at
    document boundaries: `directory/span-<n>/part.txt`. Returns the span directories."""
    with open(os.path.join(REPO_ROOT, "data", "corpus", "python_docs.txt"), encoding="utf-8") as f:
        text = f.read(span_bytes * (num_spans + 1) * 2)
    paths, start = [], 0
    for n in range(first_span, first_span + num_spans):
        cut = text.find("\n\n", start + span_bytes)
        assert cut > 0, "the shipped corpus is shorter than the spans asked for"
        span_dir = os.path.join(directory, f"span-{n}")
        os.makedirs(span_dir, exist_ok=True)
        with open(os.path.join(span_dir, "part.txt"), "w", encoding="utf-8") as f:
            f.write(text[start:cut + 1].lstrip("\n"))
        paths.append(span_dir)
        start = cut + 2
    return paths


@pytest.fixture(scope="session")
def corpus_spans(tmp_path_factory) -> list[str]:
    """Three spans (~15 KB each) of the shipped corpus: `<dir>/span-{1,2,3}/part.txt`, for
    tests of data arriving over time (copy them into a pattern one by one)."""
    return cut_corpus_spans(str(tmp_path_factory.mktemp("corpus_spans")))
