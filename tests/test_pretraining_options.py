"""PretrainingDataOptions: defaults, validation naming the option, JSON round trip."""
import dataclasses

import pytest

from components.pretraining_data.options import PretrainingDataOptions


def test_defaults_are_the_original_flags():
    o = PretrainingDataOptions()
    assert (o.max_seq_length, o.max_predictions_per_seq, o.masked_lm_prob, o.dupe_factor,
            o.short_seq_prob, o.do_lower_case, o.do_whole_word_mask, o.random_seed) == (
        128, 20, 0.15, 10, 0.1, True, False, 12345)
    assert (o.eval_fraction, o.num_shards) == (0.1, 4)
    assert o.validate() is o


def test_json_round_trip():
    o = PretrainingDataOptions(max_seq_length=64, do_whole_word_mask=True, num_shards=2)
    assert PretrainingDataOptions.from_json(o.to_json()) == o
    assert PretrainingDataOptions.from_json("{}") == PretrainingDataOptions()


@pytest.mark.parametrize("change, name", [
    ({"max_seq_length": 7}, "max_seq_length"),
    ({"max_predictions_per_seq": 126}, "max_predictions_per_seq"),
    ({"max_predictions_per_seq": 0}, "max_predictions_per_seq"),
    ({"masked_lm_prob": 0.0}, "masked_lm_prob"),
    ({"dupe_factor": 0}, "dupe_factor"),
    ({"short_seq_prob": 1.5}, "short_seq_prob"),
    ({"eval_fraction": 1.0}, "eval_fraction"),
    ({"num_shards": 0}, "num_shards"),
    ({"max_seq_length": "128"}, "max_seq_length"),
    ({"do_lower_case": 1}, "do_lower_case"),
])
def test_validate_names_the_option(change, name):
    with pytest.raises(ValueError, match=name):
        dataclasses.replace(PretrainingDataOptions(), **change).validate()


def test_max_predictions_larger_than_possible_is_refused():
    # 128 - 3 maskable tokens at most.
    PretrainingDataOptions(max_predictions_per_seq=125).validate()
    with pytest.raises(ValueError, match="larger than possible"):
        PretrainingDataOptions(max_predictions_per_seq=126).validate()


def test_from_json_refuses_unknown_and_bad_json():
    with pytest.raises(ValueError, match="Unknown.*max_seq_len"):
        PretrainingDataOptions.from_json('{"max_seq_len": 128}')
    with pytest.raises(ValueError, match="not valid JSON"):
        PretrainingDataOptions.from_json("{")
