"""wordpiece_learner.learn gives tensorflow-text's learner's vocabulary, token for token."""
import os
import random

import pytest
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as reference

from components.pretraining_data import vocab, word_counts, wordpiece_learner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECIAL = list(vocab.SPECIAL_TOKENS)


def _corpus_counts(do_lower_case: bool, max_lines: int):
    """{word: count} of the shipped corpus' first max_lines non-blank lines, as the vocabulary job counts."""
    with open(os.path.join(ROOT, "data", "corpus", "python_docs.txt"), "rb") as f:
        lines = [line.rstrip(b"\n") for line in f if line.strip()][:max_lines]
    counts = {}
    word_counts.count_words(lines, do_lower_case, counts)
    return {w.decode("utf-8"): c for w, c in sorted(counts.items())}


@pytest.mark.parametrize("do_lower_case,vocab_size,lower_thresh", [(True, 2000, 2), (False, 800, 10)])
def test_the_corpus_vocabulary_equals_tensorflow_texts(do_lower_case, vocab_size, lower_thresh):
    counts = _corpus_counts(do_lower_case, 1500)
    expected = reference.learn(counts, vocab_size, SPECIAL, lower_thresh=lower_thresh)
    assert len(expected) > 400  # the search settled on a threshold that learned word pieces
    assert wordpiece_learner.learn(counts, vocab_size, SPECIAL, lower_thresh=lower_thresh) == expected


def _random_counts(rng: random.Random, n: int, alphabet: str):
    counts = {}
    for _ in range(n):
        stem = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9)))
        word = stem + rng.choice(["", "", "s", "ing", "ed", "é", "ness"])
        counts[word] = counts.get(word, 0) + int(rng.paretovariate(0.8))
    return counts


@pytest.mark.parametrize("options", [
    {},
    {"include_joiner_token": False},
    {"max_token_length": 6, "num_iterations": 2},
    {"max_input_tokens": 300, "max_unique_chars": 8, "slack_ratio": 0.0},
    {"joiner": "@@", "lower_thresh": 1, "upper_thresh": 50},
])
def test_random_counts_and_options_give_tensorflow_texts_vocabulary(options):
    counts = _random_counts(random.Random(7), 1500, "abcdeéfghiklmnoprstu.-'")
    kwargs = dict({"lower_thresh": 2}, **options)
    expected = reference.learn(counts, 400, SPECIAL, **kwargs)
    assert wordpiece_learner.learn(counts, 400, SPECIAL, **kwargs) == expected


def test_search_steps_are_reported_until_the_last():
    counts = _random_counts(random.Random(3), 800, "abcdefghik")
    steps = []
    tokens = wordpiece_learner.learn(counts, 150, SPECIAL, lower_thresh=1, on_step=steps.append)
    assert [s.step for s in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 3
    assert steps[-1].vocab_size == len(tokens) and steps[-1].steps_left_at_most == 0
    # The bound shrinks as the interval halves and is never exceeded.
    for i, step in enumerate(steps[:-1]):
        assert len(steps) - 1 - i <= step.steps_left_at_most


def test_a_word_holding_the_joiner_is_refused():
    with pytest.raises(ValueError, match="joiner '##'"):
        wordpiece_learner.learn({"ab##c": 20, "ab": 30}, 50, SPECIAL, lower_thresh=1)


def test_counting_in_chunks_of_words_gives_the_same_vocabulary(monkeypatch):
    counts = _random_counts(random.Random(11), 1500, "abcdeéfghiklmnoprstu")
    expected = reference.learn(counts, 300, SPECIAL, lower_thresh=3)
    monkeypatch.setattr(wordpiece_learner, "CHUNK_WORDS", 97)  # ~15 chunks, merged
    assert wordpiece_learner.learn(counts, 300, SPECIAL, lower_thresh=3) == expected
