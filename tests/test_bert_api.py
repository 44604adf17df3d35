"""Tests for components/bert/api.py: building from a bert_config.json and restoring TF1 / TF2 checkpoints."""
import numpy as np
import pytest
import tensorflow as tf

from components.bert.api import load_pretraining_model, load_weights
from components.bert.config import load_preset
from components.bert.optimization import create_optimizer
from components.bert.pretraining_model import BertPretrainingModel, dummy_features, ensure_built
from components.bert.tf1_checkpoint import save_tf1_checkpoint

CONFIG = load_preset("bert_test")


@pytest.fixture()
def config_file(tmp_path):
    path = str(tmp_path / "bert_config.json")
    CONFIG.to_json_file(path)
    return path


def _assert_same_outputs(model_a, model_b):
    features = dummy_features(2, 8, 2)
    for key, value in model_a(features).items():
        np.testing.assert_array_equal(model_b(features)[key].numpy(), value.numpy(), err_msg=key)


def test_without_checkpoint_builds_the_configured_model(config_file):
    model = load_pretraining_model(config_file, None)
    assert isinstance(model, BertPretrainingModel) and model.built and model.config == CONFIG


def test_restores_an_original_tf1_checkpoint(config_file, tmp_path):
    source = BertPretrainingModel(CONFIG)
    prefix = save_tf1_checkpoint(source, str(tmp_path / "bert_model.ckpt"))
    _assert_same_outputs(source, load_pretraining_model(config_file, prefix))


def test_restores_a_tf2_training_checkpoint_and_its_directory(config_file, tmp_path):
    source = BertPretrainingModel(CONFIG)
    ensure_built(source)
    optimizer = create_optimizer(1e-3, 10, 1)
    optimizer.build(source.trainable_variables)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=source, optimizer=optimizer),
                                         str(tmp_path / "train"), max_to_keep=2)
    prefix = manager.save()
    _assert_same_outputs(source, load_pretraining_model(config_file, prefix))
    _assert_same_outputs(source, load_pretraining_model(config_file, str(tmp_path / "train")))


def test_load_weights_reports_the_format(tmp_path):
    source = BertPretrainingModel(CONFIG)
    tf1 = save_tf1_checkpoint(source, str(tmp_path / "tf1" / "bert_model.ckpt"))
    tf2 = tf.train.Checkpoint(model=source).save(str(tmp_path / "tf2" / "ckpt"))
    assert load_weights(BertPretrainingModel(CONFIG), tf1) == "tf1"
    assert load_weights(BertPretrainingModel(CONFIG), tf2) == "tf2"


def test_clear_errors(config_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        load_pretraining_model(config_file, str(tmp_path / "missing.ckpt"))
    with pytest.raises(FileNotFoundError, match="No checkpoint in directory"):
        load_pretraining_model(config_file, str(tmp_path))
    other = tf.train.Checkpoint(something=tf.Variable(1.0)).save(str(tmp_path / "other" / "ckpt"))
    with pytest.raises(ValueError, match="neither an original BERT checkpoint nor a TF2 checkpoint"):
        load_pretraining_model(config_file, other)
