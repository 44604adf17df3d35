#!/usr/bin/env python3
"""A synthetic corpus of any size in the create_pretraining_data format, for scaling runs.

    python benchmarks/synthetic_corpus.py --output /tmp/c.txt --mb 300 [--seed 0]

Words are drawn from a Zipf distribution (exponent 1.1, as natural text's rank-frequency
curve) over a fixed lexicon of 400,000 made-up words whose lengths follow English's
(1-14 letters, mean ~5); sentences have 5-60 words (log-normal, median ~20, as
Wikipedia's); documents have 2-200 sentences (log-normal, median ~12; a few long
articles). One sentence per line, a blank line between documents. The same seed gives
the same bytes; the text of a larger corpus starts with that of a smaller one.
Written to a temporary name, then renamed.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

LEXICON = 400_000
ZIPF_A = 1.1
_LETTERS = np.frombuffer(b"etaoinshrdlcumwfgypbvkjxqz", np.uint8)
_LETTER_P = np.array([12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2,
                      2.0, 2.0, 1.9, 1.5, 1.0, 0.8, 0.15, 0.15, 0.1, 0.07])


def lexicon(rng: np.random.Generator) -> list[bytes]:
    """LEXICON distinct made-up words; frequent ranks get short words, as in English."""
    return made_up_words(rng, LEXICON)


def made_up_words(rng: np.random.Generator, count: int, log_mean_length: float = 1.55,
                  max_length: int = 14) -> list[bytes]:
    """`count` distinct words of English letter frequencies and log-normal lengths (median
    e**log_mean_length letters, 1 to max_length), shortest first."""
    p = _LETTER_P / _LETTER_P.sum()
    words: dict = {}
    while len(words) < count:  # draw in bulk; duplicates (short words) are drawn again
        lengths = np.clip(np.round(rng.lognormal(log_mean_length, 0.45, count)), 1, max_length).astype(int)
        letters = _LETTERS[rng.choice(26, int(lengths.sum()), p=p)].tobytes()
        ends = np.cumsum(lengths)
        for end, n in zip(ends.tolist(), lengths.tolist()):
            words.setdefault(letters[end - n:end], None)
            if len(words) == count:
                break
    return sorted(words, key=len)  # rank 0 (most frequent) gets the shortest


def write_corpus(path: str, megabytes: float, seed: int = 0) -> int:
    """Writes ~megabytes MB (10**6 bytes) of text to path; returns the bytes written."""
    rng = np.random.default_rng(seed)
    words = np.array(lexicon(rng), dtype=object)
    target = int(megabytes * 1e6)
    tmp = f"{path}.tmp-{os.getpid()}"
    written = 0
    with open(tmp, "wb") as f:
        while written < target:
            lines = []
            for _ in range(200):  # documents per write
                num_sentences = int(np.clip(rng.lognormal(np.log(12), 0.8), 2, 200))
                lengths = np.clip(np.round(rng.lognormal(np.log(20), 0.45, num_sentences)), 5, 60).astype(int)
                ranks = rng.zipf(ZIPF_A, int(lengths.sum()))
                ranks = np.where(ranks > LEXICON, rng.integers(1, LEXICON + 1, len(ranks)), ranks) - 1
                tokens = words[ranks]
                start = 0
                for n in lengths:
                    sentence = b" ".join(tokens[start:start + n])
                    lines.append(sentence[:1].upper() + sentence[1:] + b".")
                    start += n
                lines.append(b"")
            data = b"\n".join(lines) + b"\n"
            f.write(data)
            written += len(data)
    os.replace(tmp, path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True)
    parser.add_argument("--mb", type=float, required=True, help="size in MB (10**6 bytes)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{write_corpus(args.output, args.mb, args.seed):,} bytes -> {args.output}")


if __name__ == "__main__":
    main()
