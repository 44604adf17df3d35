"""Checks before a local run: corrupt --examples shards and unwritable outputs, one line each."""
from __future__ import annotations

import os
import shutil

import pytest

from conftest import write_records
from pipeline import cli, input_checks

EXAMPLES_FLAGS = ["--max_seq_length", "32", "--max_predictions_per_seq", "5", "--train_batch_size", "8",
                  "--eval_batch_size", "8", "--num_train_steps", "2", "--num_warmup_steps", "0"]


def _copy_records(independent_records, tmp_path):
    examples = tmp_path / "examples"
    shutil.copytree(independent_records, examples)
    return examples


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "\n" not in err, err
    assert err.startswith("bertpipe run: error: ")
    return err


@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_corrupt_examples_shard_is_named_before_the_pipeline_runs(damage, independent_records, tiny_vocab_file,
                                                                  tmp_path, capsys):
    examples = _copy_records(independent_records, tmp_path)
    shard = examples / "train" / "part-1.tfrecord"
    data = shard.read_bytes()
    if damage == "truncated":
        shard.write_bytes(data[:-100])  # cut inside the last record, as a broken copy leaves it
    else:
        middle = len(data) // 2
        shard.write_bytes(data[:middle] + bytes([data[middle] ^ 0x10]) + data[middle + 1:])
    out = tmp_path / "out"
    status = cli.main(["run", "--examples", str(examples), "--vocab_file", tiny_vocab_file,
                       "--output_dir", str(out)] + EXAMPLES_FLAGS)
    assert status == 2
    err = _one_line_error(capsys)
    assert str(shard) in err and ("truncated record" if damage == "truncated" else "corrupted record") in err
    assert "regenerate it, or remove it" in err
    assert not (out / "metadata.sqlite").exists()  # refused before the pipeline started


def test_whole_shards_pass_and_a_stray_text_file_is_refused(independent_records, tmp_path):
    examples = _copy_records(independent_records, tmp_path)
    input_checks.check_examples_dir(str(examples), presplit=True)
    (examples / "train" / "README.txt").write_text("records made on 2026-01-01\n")
    with pytest.raises(ValueError, match=r"train/README.txt is not a whole TFRecord file"):
        input_checks.check_examples_dir(str(examples), presplit=True)


def test_gzip_shards_are_read_as_gzip(tmp_path):
    import gzip

    plain = write_records(str(tmp_path / "plain" / "part-0.tfrecord"), 20, seed=4)
    os.makedirs(tmp_path / "flat")
    with open(plain, "rb") as f, gzip.open(tmp_path / "flat" / "part-0.tfrecord.gz", "wb") as g:
        g.write(f.read())
    input_checks.check_examples_dir(str(tmp_path / "flat"), presplit=False)


def test_a_split_without_files_is_named(independent_records, tmp_path):
    examples = _copy_records(independent_records, tmp_path)
    for name in os.listdir(examples / "eval"):
        os.remove(examples / "eval" / name)
    with pytest.raises(ValueError, match=r"eval/\* matches no TFRecord file"):
        input_checks.check_examples_dir(str(examples), presplit=True)


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_unwritable_output_dir_is_a_one_line_error(where, tmp_path, capsys):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    output_dir = blocker if where == "a file" else blocker / "out"
    assert cli.main(["run", "--output_dir", str(output_dir)]) == 2
    err = _one_line_error(capsys)
    assert "--output_dir" in err and str(output_dir) in err and "give a directory you can create" in err


@pytest.mark.parametrize("content, message", [(None, "matches no file"), ("", "empty (0 bytes)")])
def test_missing_or_empty_corpus_names_the_corpus_flag(content, message, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    if content is not None:
        corpus.write_text(content)
    assert cli.main(["run", "--corpus", str(corpus), "--output_dir", str(tmp_path / "out")]) == 2
    err = _one_line_error(capsys)
    assert "--corpus" in err and "--input_file" not in err and message in err


def test_a_corrupt_record_past_the_first_read_batch_is_found(tmp_path):
    """The scan reads records in batches (4096): a flipped byte in a record after the first batch,
    in a shard of tiny (3-byte) records, must be found as surely as one inside it."""
    import tensorflow as tf

    count, payload = input_checks._SCAN_BATCH + 100, b"abc"
    shard = str(tmp_path / "examples" / "part-0.tfrecord")
    os.makedirs(os.path.dirname(shard))
    with tf.io.TFRecordWriter(shard) as writer:
        for _ in range(count):
            writer.write(payload)
    assert input_checks.find_corrupt_record(shard) is None
    framed = 8 + 4 + len(payload) + 4  # length, its CRC, the data, its CRC
    data = bytearray(open(shard, "rb").read())
    assert len(data) == count * framed
    record = input_checks._SCAN_BATCH + 4
    data_offset = record * framed + 12
    data[data_offset] ^= 0x01  # the first data byte of that record
    open(shard, "wb").write(bytes(data))
    # TensorFlow names the offset of the record's data, whose CRC no longer matches.
    assert input_checks.find_corrupt_record(shard) == f"corrupted record at {data_offset}"
    with pytest.raises(ValueError, match=r"part-0.tfrecord is not a whole TFRecord file \(corrupted record"):
        input_checks.check_examples_dir(str(tmp_path / "examples"), presplit=False)
