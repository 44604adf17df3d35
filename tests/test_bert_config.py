"""Tests for components/bert/config.py (no TensorFlow needed)."""
import json

import pytest

from components.bert.config import PRESET_NAMES, BertConfig, load_preset

# A released google-research/bert file (uncased_L-12_H-768_A-12/bert_config.json).
ORIGINAL_BASE = {
    "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
    "max_position_embeddings": 512, "num_attention_heads": 12, "num_hidden_layers": 12,
    "type_vocab_size": 2, "vocab_size": 30522,
}


def test_defaults_are_the_original_classes():
    config = BertConfig(vocab_size=100)
    assert config.to_dict() == {
        "vocab_size": 100, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
        "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 16,
        "initializer_range": 0.02,
    }
    assert config.attention_head_size == 64


def test_reads_an_original_config_file(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(ORIGINAL_BASE, indent=2))
    assert BertConfig.from_json_file(str(path)).to_dict() == ORIGINAL_BASE


def test_reads_a_multilingual_file_with_unused_pooler_keys(tmp_path):
    values = dict(ORIGINAL_BASE, vocab_size=119547, directionality="bidi", pooler_fc_size=768,
                  pooler_num_attention_heads=12, pooler_num_fc_layers=3, pooler_size_per_head=128,
                  pooler_type="first_token_transform")
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(values))
    assert BertConfig.from_json_file(str(path)).vocab_size == 119547


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(dict(ORIGINAL_BASE, hiden_size=3)))
    with pytest.raises(ValueError, match=r"'hiden_size'.*bert_config\.json"):
        BertConfig.from_json_file(str(path))


def test_missing_vocab_size_and_invalid_json(tmp_path):
    values = dict(ORIGINAL_BASE)
    del values["vocab_size"]
    with pytest.raises(ValueError, match="vocab_size"):
        BertConfig.from_dict(values)
    path = tmp_path / "broken.json"
    path.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        BertConfig.from_json_file(str(path))


@pytest.mark.parametrize("changes, message", [
    ({"hidden_size": 30, "num_attention_heads": 4}, "not a multiple of num_attention_heads"),
    ({"num_hidden_layers": 0}, "num_hidden_layers must be a positive integer"),
    ({"hidden_size": 32.0}, "hidden_size must be a positive integer"),
    ({"hidden_dropout_prob": 1.0}, r"hidden_dropout_prob must be a number in \[0, 1\)"),
    ({"initializer_range": 0}, "initializer_range must be positive"),
    ({"hidden_act": "swish"}, "hidden_act must be one of"),
])
def test_validation_messages(changes, message):
    with pytest.raises(ValueError, match=message):
        BertConfig(vocab_size=100, **changes)


def test_json_round_trip_and_replace(tmp_path):
    config = BertConfig(vocab_size=100, hidden_size=32, num_attention_heads=4, hidden_act="relu")
    path = tmp_path / "sub" / "bert_config.json"
    config.to_json_file(str(path))
    assert BertConfig.from_json_file(str(path)) == config
    assert json.loads(config.to_json_string()) == config.to_dict()
    assert config.to_json_string().endswith("\n")
    assert sorted(p.name for p in path.parent.iterdir()) == ["bert_config.json"]  # no temp file left
    bigger = config.replace(num_hidden_layers=4)
    assert bigger.num_hidden_layers == 4 and config.num_hidden_layers == 12
    with pytest.raises(ValueError, match="not a multiple"):
        config.replace(num_attention_heads=5)


@pytest.mark.parametrize("name, layers, hidden, heads", [
    ("bert_tiny", 2, 128, 2), ("bert_mini", 4, 256, 4), ("bert_small", 4, 512, 8),
    ("bert_medium", 8, 512, 8), ("bert_base", 12, 768, 12), ("bert_large", 24, 1024, 16),
    ("bert_test", 2, 32, 4),
])
def test_presets(name, layers, hidden, heads):
    config = load_preset(name)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (layers, hidden, heads)
    assert config.intermediate_size == (64 if name == "bert_test" else 4 * hidden)
    assert load_preset(name, vocab_size=123).vocab_size == 123


def test_preset_names_and_bert_test_shape():
    assert set(PRESET_NAMES) == {"bert_tiny", "bert_mini", "bert_small", "bert_medium", "bert_base",
                                 "bert_large", "bert_test"}
    assert load_preset("bert_test").max_position_embeddings == 128
    assert load_preset("bert_base").to_dict() == ORIGINAL_BASE
    with pytest.raises(ValueError, match="Unknown BERT preset 'bert_huge'"):
        load_preset("bert_huge")
