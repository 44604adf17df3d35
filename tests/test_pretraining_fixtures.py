"""Helpers for the pretraining-data tests (no tests here): tiny vocabularies and corpora.

Every document k has a marker word "dk" in each sentence, so tests can tell
which document a token came from.
"""
from __future__ import annotations

import random

from components.pretraining_data import vocab as vocab_lib

WORDS = ["the", "cat", "dog", "sat", "on", "mat", "ran", "far", "away", "and", "then", "slept",
         "a", "big", "red", "ball", "is", "here", "we", "go", "play", "ing", "un", "believ",
         "able"]
NUM_MARKERS = 60


def vocab_tokens() -> list[str]:
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    markers = [f"d{k}" for k in range(NUM_MARKERS)]
    tokens = (list(vocab_lib.SPECIAL_TOKENS) + [".", ",", "!"] + letters
              + ["##" + c for c in letters] + [str(d) for d in range(10)]
              + ["##" + str(d) for d in range(10)] + WORDS + ["##ing", "##able", "##believ"]
              + markers)
    return list(dict.fromkeys(tokens))  # unique, in order


def write_vocab(path) -> str:
    path.write_text("".join(t + "\n" for t in vocab_tokens()))
    return str(path)


def corpus_text(num_docs: int, seed: int = 0, min_sentences: int = 2, max_sentences: int = 9,
                first_doc: int = 0) -> str:
    """Documents separated by blank lines; sentence = marker + 4-14 random words."""
    rng = random.Random(seed)
    docs = []
    for k in range(first_doc, first_doc + num_docs):
        sentences = []
        for _ in range(rng.randint(min_sentences, max_sentences)):
            words = [rng.choice(WORDS + ["playing", "unbelievable", "Dogs"]) for _ in range(
                rng.randint(4, 14))]
            sentences.append(f"d{k % NUM_MARKERS} " + " ".join(words) + ".")
        docs.append("\n".join(sentences))
    return "\n\n".join(docs) + "\n"


def marker_ids() -> dict[int, int]:
    """{token id: document number} for the markers."""
    tokens = vocab_tokens()
    return {tokens.index(f"d{k}"): k for k in range(NUM_MARKERS)}
