"""`bertpipe vocab` / `bertpipe prepare-data` parsing and error handling (cli.py)."""
import argparse

import pytest

from components.pretraining_data import cli
from components.pretraining_data.options import PretrainingDataOptions

from test_pretraining_fixtures import corpus_text, write_vocab


def _parser():
    parser = argparse.ArgumentParser(prog="bertpipe")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_original_flags_and_defaults():
    args = _parser().parse_args([
        "prepare-data", "--input_file=a.txt,b*.txt", "--vocab_file=v.txt", "--output_file=o.tfrecord",
        "--do_lower_case=false", "--do_whole_word_mask", "--max_seq_length=64"])
    assert args.func is cli.run_prepare_data
    options = cli.options_from_args(args)
    assert options == PretrainingDataOptions(max_seq_length=64, do_lower_case=False,
                                             do_whole_word_mask=True)
    args = _parser().parse_args(["prepare-data", "--input_file=a", "--vocab_file=v",
                                 "--output_dir=d", "--runner=DataflowRunner",
                                 "--setup_file=./setup.py", "--beam_arg=--region=r"])
    assert cli.options_from_args(args) == PretrainingDataOptions()
    assert cli.beam_args_from(args, ["--project=p"]) == [
        "--region=r", "--project=p", "--runner=DataflowRunner", "--setup_file=./setup.py"]
    vocab_args = _parser().parse_args(["vocab", "--input_file=a", "--vocab_file=v"])
    assert vocab_args.vocab_size == 30522 and vocab_args.vocab_sample_lines is None  # the whole corpus
    # --max_lines (the first N lines, once) now names the uniform sample.
    assert _parser().parse_args(["vocab", "--input_file=a", "--vocab_file=v", "--max_lines=7"]).vocab_sample_lines == 7


def test_help_and_exclusive_outputs(capsys):
    for command in ("vocab", "prepare-data"):
        with pytest.raises(SystemExit) as e:
            _parser().parse_args([command, "--help"])
        assert e.value.code == 0
    assert "--max_predictions_per_seq" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        _parser().parse_args(["prepare-data", "--input_file=a", "--vocab_file=v",
                              "--output_dir=d", "--output_file=f"])


def test_bad_option_returns_2_with_message(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text(corpus_text(3))
    vocab = write_vocab(tmp_path / "v.txt")
    code = cli.main(["prepare-data", f"--input_file={corpus}", f"--vocab_file={vocab}",
                     f"--output_dir={tmp_path / 'out'}", "--max_predictions_per_seq=500"])
    assert code == 2
    assert "max_predictions_per_seq=500 is larger than possible" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_prepare_data_runs_in_process(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text(corpus_text(10))
    vocab = write_vocab(tmp_path / "v.txt")
    code = cli.main(["prepare-data", f"--input_file={corpus}", f"--vocab_file={vocab}",
                     f"--output_file={tmp_path / 'o.tfrecord'}", "--max_seq_length=32",
                     "--max_predictions_per_seq=5", "--dupe_factor=1",
                     "--direct_num_workers=1"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "o.tfrecord").stat().st_size > 0
