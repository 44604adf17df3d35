"""PipelineConfig JSON round-trip and the bertpipe command line."""
from __future__ import annotations

import dataclasses
import json

import pytest

from pipeline import cli
from pipeline.config import PipelineConfig, local_default


def test_config_round_trips_through_json(tmp_path):
    config = local_default().replace(vocab_size=1234)
    path = tmp_path / "config.json"
    path.write_text(config.to_json())
    assert PipelineConfig.from_json_file(str(path)) == config


def test_unknown_config_key_names_file_and_key(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"training": {"num_train_step": 10}}))
    with pytest.raises(ValueError, match=r"config.json \[training\].*'num_train_step'"):
        PipelineConfig.from_json_file(str(path))


def test_flags_override_config_under_original_names(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(local_default().replace(vocab_size=999).to_json())
    args = cli.build_parser().parse_args([
        "run", "--config", str(path), "--max_seq_length", "128", "--num_train_steps", "50",
        "--learning_rate", "2e-5", "--use_tpu", "true", "--tpu_name", "t", "--do_lower_case", "false",
        "--min_masked_lm_accuracy", "0.2"])
    config = cli.config_from_args(args)
    assert config.vocab_size == 999
    assert config.data.max_seq_length == 128 and not config.data.do_lower_case
    assert config.training.num_train_steps == 50 and config.training.learning_rate == 2e-5
    assert config.training.use_tpu and config.training.tpu_name == "t"
    assert config.evaluation.min_masked_lm_accuracy == 0.2


def test_examples_mode_needs_a_vocabulary_size(tmp_path):
    args = cli.build_parser().parse_args(["run", "--examples", str(tmp_path)])
    with pytest.raises(ValueError, match="--vocab_file"):
        cli.config_from_args(args)


def test_bad_flag_value_is_an_error_exit(tmp_path, capsys):
    assert cli.main(["run", "--num_warmup_steps", "500", "--num_train_steps", "100",
                     "--output_dir", str(tmp_path)]) == 2
    assert "--num_warmup_steps" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["run"], ["compile"], ["vocab"], ["prepare-data"]])
def test_every_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(command + ["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: bertpipe" in text
    if command == ["run"]:
        assert "--examples" in text and "--init_checkpoint" in text and "--iterations_per_loop" in text
    if command == ["prepare-data"]:
        assert "--input_file" in text and "--dupe_factor" in text


@pytest.mark.parametrize("values, key", [
    ({"training": {"num_train_steps": "ten"}}, "num_train_steps"),
    ({"vocab_size": "4000"}, "vocab_size"),
    ({"training": {"train_batch_size": 8.5}}, "train_batch_size"),
    ({"training": {"use_tpu": 1}}, "use_tpu"),
    ({"data": {"num_shards": True}}, "num_shards"),
    ({"evaluation": {"min_masked_lm_accuracy": "high"}}, "min_masked_lm_accuracy"),
    ({"vocab_file": 3}, "vocab_file"),
    ({"training": []}, "training"),
])
def test_wrong_type_in_config_file_is_a_one_line_error_naming_file_and_key(values, key, tmp_path, capsys):
    path = tmp_path / "typed.json"
    path.write_text(json.dumps(values))
    assert cli.main(["run", "--config", str(path), "--output_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("bertpipe run: error: ") and "typed.json" in err and key in err


def test_config_numbers_accept_ints_for_floats_and_null_for_optional_strings(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"training": {"learning_rate": 1, "init_checkpoint": None},
                                "evaluation": {"min_masked_lm_accuracy": 0}}))
    config = PipelineConfig.from_json_file(str(path), base=local_default())
    assert config.training.learning_rate == 1 and config.evaluation.min_masked_lm_accuracy == 0


def test_partial_config_section_keeps_the_local_defaults_it_leaves_out(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"training": {"train_batch_size": 16, "num_train_steps": 200},
                                "data": {"dupe_factor": 3}}))
    config = cli.config_from_args(cli.build_parser().parse_args(["run", "--config", str(path)]))
    default = local_default()
    assert config.training == dataclasses.replace(default.training, train_batch_size=16, num_train_steps=200)
    assert config.data == dataclasses.replace(default.data, dupe_factor=3)
    assert config.training.num_warmup_steps == default.training.num_warmup_steps == 30
    assert config.vocab_size == default.vocab_size and config.evaluation == default.evaluation
