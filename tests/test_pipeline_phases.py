"""Two-phase pretraining: the phase-2 config (JSON, flags, validation) and the DAG it builds."""
from __future__ import annotations

import json

import pytest

from components.trainer.params import TrainerParams
from pipeline import cli
from pipeline.config import PipelineConfig, bert_config_dict, local_default
from pipeline.phases import Phase2Config, phase2_data_options, phase2_training
from pipeline.pipeline import create_pipeline, phase_checkpoint_dirs

PHASE2 = Phase2Config(max_seq_length=128, max_predictions_per_seq=20, num_train_steps=30, num_warmup_steps=3,
                      train_batch_size=16, learning_rate=5e-4)


def _args(*flags):
    parser = cli.build_parser()
    return parser.parse_args(["run", *flags])


# ----------------------------------------------------------------------------- config

def test_phase2_flags_use_the_recipe_names_and_leave_phase1_alone():
    config = cli.config_from_args(_args("--max_seq_length", "32", "--phase2_max_seq_length", "128",
                                        "--phase2_max_predictions_per_seq", "20", "--phase2_num_train_steps", "30",
                                        "--phase2_num_warmup_steps", "3", "--phase2_train_batch_size", "16",
                                        "--phase2_learning_rate", "5e-4"))
    assert config.phase2 == PHASE2
    assert config.data.max_seq_length == 32 and config.training == local_default().training
    assert cli.config_from_args(_args()).phase2 is None  # one phase stays the default


def test_phase2_defaults_inherit_phase1_batch_size_and_learning_rate():
    training = local_default().training
    derived = phase2_training(training, Phase2Config(max_seq_length=128, max_predictions_per_seq=20))
    assert (derived.train_batch_size, derived.learning_rate) == (training.train_batch_size, training.learning_rate)
    assert (derived.num_train_steps, derived.num_warmup_steps) == (10000, 1000)
    own = phase2_training(training.__class__(init_checkpoint="/ckpt"), PHASE2)
    assert (own.train_batch_size, own.learning_rate, own.init_checkpoint) == (16, 5e-4, None)
    data = phase2_data_options(local_default().data, PHASE2)
    assert (data.max_seq_length, data.max_predictions_per_seq) == (128, 20)
    assert (data.random_seed, data.dupe_factor) == (local_default().data.random_seed, local_default().data.dupe_factor)


def test_json_config_round_trips_and_a_partial_phase2_section_takes_defaults(tmp_path):
    config = local_default().replace(phase2=PHASE2)
    assert PipelineConfig.from_dict(json.loads(config.to_json())) == config
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"phase2": {"max_seq_length": 128, "max_predictions_per_seq": 20}}))
    loaded = PipelineConfig.from_json_file(str(path), base=local_default())
    assert loaded.phase2 == Phase2Config(max_seq_length=128, max_predictions_per_seq=20)
    # A one-phase config reads (and so fingerprints its checkpoints) as before phases existed.
    assert "phase2" not in local_default().to_dict()


@pytest.mark.parametrize("values, named", [
    ({"phase2": {"num_warmup_steps": 20, "num_train_steps": 10, "max_predictions_per_seq": 20}},
     "--phase2_num_warmup_steps"),
    ({"phase2": {"max_seq_length": 16, "max_predictions_per_seq": 20}}, "--phase2_max_predictions_per_seq 20"),
    ({"phase2": {"learning_rate": 0, "max_predictions_per_seq": 20}}, "--phase2_learning_rate"),
    ({"phase2": {"train_batch_size": 0, "max_predictions_per_seq": 20}}, "--phase2_train_batch_size"),
    ({"phase2": {"max_seq_length": 64, "max_predictions_per_seq": 10}}, "equal phase 1's"),
])
def test_bad_phase2_values_are_refused_naming_the_flag(tmp_path, values, named):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ValueError, match=named):
        PipelineConfig.from_json_file(str(path), base=local_default()).validate()


def test_phase2_keys_are_type_checked_naming_file_and_key(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"phase2": {"num_train_steps": "100"}}))
    with pytest.raises(ValueError, match=r"c\.json \[phase2\]: num_train_steps must be int"):
        PipelineConfig.from_json_file(str(path))
    path.write_text(json.dumps({"phase2": {"max_seq_len": 512}}))
    with pytest.raises(ValueError, match=r"\[phase2\]: unknown key\(s\) \['max_seq_len'\]"):
        PipelineConfig.from_json_file(str(path))


def test_phase2_needs_a_corpus_not_existing_records():
    config = local_default().replace(examples_dir="/records", vocab_file="/vocab.txt", corpus_pattern="",
                                     phase2=PHASE2)
    with pytest.raises(ValueError, match="--phase2_\\* with --examples"):
        config.validate()


def test_a_bert_config_too_short_for_phase2_is_refused_in_one_line_naming_the_keys(capsys, tmp_path):
    # bert_test's position table has 128 rows.
    status = cli.main(["compile", "--output", str(tmp_path / "p.json"), "--pipeline_root", "gs://bucket/root",
                       "--image", "gcr.io/p/bert:1", "--phase2_max_seq_length", "256",
                       "--phase2_max_predictions_per_seq", "40"])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "--phase2_max_seq_length 256 exceeds max_position_embeddings 128" in err
    assert "--bert_preset bert_test" in err
    assert not (tmp_path / "p.json").exists()


# ----------------------------------------------------------------------------- DAG

def _pipeline(config: PipelineConfig, retraining: bool = False):
    config.validate()
    return create_pipeline(config, bert_config_dict(config), pipeline_root="/root", serving_model_dir="/serving",
                           retraining=retraining)


def _by_id(pipeline) -> dict:
    return {c.id: c for c in pipeline.components}


def _producer(channel) -> str:
    return channel.producer_component_id


def _params(trainer) -> TrainerParams:
    return TrainerParams.from_custom_config(json.loads(trainer.exec_properties["custom_config"]))


def test_two_phases_make_two_data_sets_and_two_trainers_and_push_only_phase2():
    config = local_default().replace(phase2=PHASE2)
    nodes = _by_id(_pipeline(config))
    assert set(nodes) == {"VocabularyGen", "PretrainingDataGen", "ImportExampleGen", "PretrainingDataGenPhase2",
                          "ImportExampleGenPhase2", "BertTrainer", "BertTrainerPhase2", "Evaluator", "Pusher"}
    # Same vocabulary for both data sets and both trainers.
    for name in ("PretrainingDataGen", "PretrainingDataGenPhase2", "BertTrainer", "BertTrainerPhase2"):
        assert _producer(nodes[name].inputs["vocabulary"]) == "VocabularyGen", name
    options = [json.loads(nodes[n].exec_properties["options_json"]) for n in ("PretrainingDataGen",
                                                                              "PretrainingDataGenPhase2")]
    assert [(o["max_seq_length"], o["max_predictions_per_seq"]) for o in options] == [(64, 10), (128, 20)]
    assert nodes["PretrainingDataGen"].exec_properties["records_dir"] != \
        nodes["PretrainingDataGenPhase2"].exec_properties["records_dir"]
    assert nodes["ImportExampleGenPhase2"].exec_properties["input_base"] == \
        nodes["PretrainingDataGenPhase2"].exec_properties["records_dir"]
    # Phase 1 trains on phase 1's examples from scratch; phase 2 on phase 2's, from phase 1's model.
    assert _producer(nodes["BertTrainer"].inputs["examples"]) == "ImportExampleGen"
    assert "base_model" not in nodes["BertTrainer"].inputs
    assert _producer(nodes["BertTrainerPhase2"].inputs["examples"]) == "ImportExampleGenPhase2"
    assert _producer(nodes["BertTrainerPhase2"].inputs["base_model"]) == "BertTrainer"
    # Only the final model is evaluated (on phase 2's eval split) and pushed.
    assert _producer(nodes["Evaluator"].inputs["model"]) == "BertTrainerPhase2"
    assert _producer(nodes["Evaluator"].inputs["examples"]) == "ImportExampleGenPhase2"
    assert _producer(nodes["Pusher"].inputs["model"]) == "BertTrainerPhase2"


def test_each_trainer_gets_its_phase_settings_and_its_own_checkpoint_dir():
    config = local_default().replace(phase2=PHASE2)
    nodes = _by_id(_pipeline(config))
    first, second = _params(nodes["BertTrainer"]), _params(nodes["BertTrainerPhase2"])
    assert (first.phase, first.max_seq_length, first.training) == (1, 64, config.training)
    assert (second.phase, second.max_seq_length, second.max_predictions_per_seq) == (2, 128, 20)
    assert (second.training.num_train_steps, second.training.num_warmup_steps) == (30, 3)
    assert (second.training.train_batch_size, second.training.learning_rate) == (16, 5e-4)
    assert json.loads(nodes["BertTrainerPhase2"].exec_properties["train_args"])["num_steps"] == 30
    assert first.checkpoint_dir != second.checkpoint_dir
    # Phase 1 checkpoints where the one-phase run of the same config does: changing phase 2
    # keeps (and resumes) phase 1.
    one_phase = _params(_by_id(_pipeline(local_default()))["BertTrainer"])
    assert first.checkpoint_dir == one_phase.checkpoint_dir and one_phase.phase is None
    other_phase2 = config.replace(phase2=Phase2Config(max_seq_length=128, max_predictions_per_seq=20))
    assert phase_checkpoint_dirs(other_phase2, "/root")[0] == first.checkpoint_dir
    assert phase_checkpoint_dirs(other_phase2, "/root")[1] != second.checkpoint_dir


def test_retraining_with_two_phases_warm_starts_phase1_from_the_resolver_and_phase2_from_phase1():
    nodes = _by_id(_pipeline(local_default().replace(phase2=PHASE2), retraining=True))
    assert _producer(nodes["BertTrainer"].inputs["base_model"]) == "latest_blessed_model_resolver"
    assert _producer(nodes["BertTrainerPhase2"].inputs["base_model"]) == "BertTrainer"
    assert _producer(nodes["Evaluator"].inputs["baseline_model"]) == "latest_blessed_model_resolver"
    assert _producer(nodes["Evaluator"].inputs["model"]) == "BertTrainerPhase2"
