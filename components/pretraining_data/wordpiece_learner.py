"""tensorflow-text's BERT vocabulary learner, with its per-threshold step made linear.

`learn` takes the arguments of tensorflow-text's
`wordpiece_tokenizer_learner_lib.learn` and returns the same vocabulary, token for token
(tests/test_wordpiece_learner.py compares the two). It reuses that library's input
filtering, splitting and final ordering; only `learn_with_thresh`, which the binary search
over the frequency threshold calls ~20 times, is computed differently:

- The library counts, in each of its iterations, every substring word[start:end] of every
  word from each piece start to every end (O(length^2) per word), then, longest first,
  subtracts each substring's count from all its prefixes (O(length) per substring): at
  least O(length^3) per word, in Python: ~32 s per threshold on 63,713 words of real text,
  631 s for a 30k vocabulary (benchmarks/README.md).
- After those subtractions a substring's count is exactly the count of the words in which
  it is a whole *suffix from a piece start* (proof: the enumerated substrings from one start
  are the prefixes of that suffix, so they form a trie whose node count is the weight of the
  suffixes passing through it; subtracting the already-reduced counts of all longer
  extensions, longest first, leaves the weight of the suffixes ending at the node). So each
  iteration here adds a word's count to one entry per piece start: O(pieces) per word.
- The first iteration's starts are every position, whatever the threshold: its counts are
  computed once and shared by every step of the search.
- The counting is TensorFlow ops (substr, unique, segment sums), and the greedy
  longest-match split of the later iterations is FastWordpieceTokenizer's (C++): 14 s for
  those 63,713 words, 15 minutes for 5,000,000.
"""
from __future__ import annotations

import itertools
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as lib


class SearchStep(NamedTuple):
    """One step of the binary search over the frequency threshold, for progress lines."""
    step: int  # 1, 2, ...
    thresh: int
    vocab_size: int  # tokens this threshold gives
    elapsed: float  # seconds since learning started
    steps_left_at_most: int  # the search ends within this many more steps


def learn(word_counts, vocab_size: int, reserved_tokens: List[str], upper_thresh: Optional[int] = int(1e7),
          lower_thresh: Optional[int] = 10, num_iterations: int = 4, max_input_tokens: Optional[int] = int(5e6),
          max_token_length: int = 50, max_unique_chars: int = 1000, slack_ratio: float = 0.05,
          include_joiner_token: bool = True, joiner: str = "##",
          on_step: Optional[Callable[[SearchStep], None]] = None) -> List[str]:
    """The vocabulary tensorflow-text's `learn` makes from word_counts ({word: count} or
    (word, count) pairs), with the same arguments and defaults; see its docstring.
    on_step, if given, is called after each threshold tried.

    Raises:
      ValueError: if lower_thresh < 1 (a threshold of 0 keeps every substring; the
        library's own learner handles it, not this one).
    """
    if lower_thresh is not None and lower_thresh < 1:
        raise ValueError(f"lower_thresh={lower_thresh}: the frequency threshold must be >= 1.")
    started = time.monotonic()
    if isinstance(word_counts, dict):
        word_counts = word_counts.items()
    params = lib.Params(upper_thresh, lower_thresh, num_iterations, max_input_tokens, max_token_length,
                        max_unique_chars, vocab_size, slack_ratio, include_joiner_token, joiner, reserved_tokens)
    upper, lower = lib.get_search_threshs(word_counts, params.upper_thresh, params.lower_thresh)
    all_counts = lib.get_input_words(word_counts, params.reserved_tokens, params.max_token_length)
    allowed_chars = lib.get_allowed_chars(all_counts, params.max_unique_chars)
    words = lib.filter_input_words(all_counts, allowed_chars, params.max_input_tokens)
    # The search never tries a threshold below lower - 1 (its interval can close one below).
    step = _ThresholdStep(words, params, min_threshold=max(1, lower - 1))
    slack_count = max(0.0, params.slack_ratio * params.vocab_size)
    for step_number in itertools.count(1):  # lib.learn_binary_search, as a loop
        thresh = (upper + lower) // 2
        vocab = step.vocabulary(thresh)
        within_slack = len(vocab) <= params.vocab_size and params.vocab_size - len(vocab) <= slack_count
        done = within_slack or lower >= upper or thresh <= 1
        if not done:
            if len(vocab) > params.vocab_size:
                lower = thresh + 1
            else:
                upper = thresh - 1
        if on_step is not None:
            on_step(SearchStep(step_number, thresh, len(vocab), time.monotonic() - started,
                               0 if done else _steps_at_most(lower, upper)))
        if done:
            return vocab


def _steps_at_most(lower: int, upper: int) -> int:
    """How many thresholds a binary search of [lower, upper] tries at most."""
    return max(1, upper - lower + 1).bit_length()


# Words per chunk of a suffix count: bounds its temporaries (~250 bytes per suffix counted).
CHUNK_WORDS = 200_000


class _ThresholdStep:
    """lib.learn_with_thresh for one list of (word, count) and several thresholds, in
    TensorFlow ops: W words, S piece starts over all words, U distinct suffixes."""

    def __init__(self, words: List[Tuple[str, int]], params: "lib.Params", min_threshold: int = 1):
        import tensorflow as tf

        self._params = params
        self._char_tokens = lib.extract_char_tokens(words)
        if any(params.joiner in w for w, _ in words):
            raise ValueError(f"A word contains the joiner {params.joiner!r}; BERT's basic tokenisation "
                             "splits '#' off every word, so counted words never do.")
        self._words = tf.constant([w.encode("utf-8") for w, _ in words], tf.string)  # [W]
        self._counts = tf.constant([c for _, c in words], tf.int64)  # [W]
        # The unknown token FastWordpieceTokenizer needs: a character no word has, so no word
        # can match it, and a word it is returned for has no split (the library skips it).
        self._unknown = next(chr(c) for c in range(0xE000, 0x110000) if chr(c) not in self._char_tokens)
        # The first iteration splits at every character, whatever the threshold: count it once.
        # Kept for every step, so only the counts a threshold of the search can pass.
        _, char_starts = tf.strings.unicode_decode_with_offsets(self._words, "UTF-8")  # [W, None]
        self._first_counts = self._suffix_counts(char_starts, min_count=min_threshold)

    def vocabulary(self, thresh: int) -> List[str]:
        p = self._params
        tokens = lib.ensure_all_tokens_exist(self._char_tokens, {}, p.include_joiner_token, p.joiner)
        for iteration in range(p.num_iterations):
            counts = self._first_counts if iteration == 0 else self._suffix_counts(self._piece_starts(tokens))
            tokens = lib.ensure_all_tokens_exist(self._char_tokens, self._at_least(counts, thresh),
                                                 p.include_joiner_token, p.joiner)
        return lib.generate_final_vocabulary(p.reserved_tokens, self._char_tokens, tokens)

    def _piece_starts(self, tokens: Dict[str, int]):
        """Byte offsets where lib.get_split_indices' greedy longest-match pieces start, [W, None]
        (an empty row for a word that cannot be split). FastWordpieceTokenizer makes the same
        longest-match-first split in C++."""
        import tensorflow as tf
        import tensorflow_text as tft

        p = self._params
        vocab = list(tokens)
        if not p.include_joiner_token:  # a later piece matches the same tokens as the first
            vocab += [p.joiner + t for t in tokens]
        vocab.append(self._unknown)
        tokenizer = tft.FastWordpieceTokenizer(
            vocab, suffix_indicator=p.joiner, max_bytes_per_word=4 * p.max_token_length,
            token_out_type=tf.int64, unknown_token=self._unknown, no_pretokenization=True,
            support_detokenization=False)
        ids, starts, _ = tokenizer.tokenize_with_offsets(self._words)
        split = tf.reduce_all(tf.not_equal(ids, len(vocab) - 1), axis=1)  # [W]
        keep = starts.with_flat_values(tf.gather(split, starts.value_rowids()))
        return tf.ragged.boolean_mask(starts, keep)  # W rows still; those of unsplit words emptied

    def _suffix_counts(self, starts, min_count: int = 1):
        """starts: byte offsets of piece starts, [W, None] -> (keys [U], counts [U]): each
        substring's count in lib.learn_with_thresh after its prefix subtractions (module
        docstring), for the counts >= min_count. A key is "W"+suffix for a suffix from the
        word's start and "J"+suffix for one from a later start (the library counts the two
        apart, with and without the joiner). Counted CHUNK_WORDS words at a time, then merged."""
        import tensorflow as tf

        parts = [self._chunk_suffix_counts(starts[begin:begin + CHUNK_WORDS], begin)
                 for begin in range(0, int(starts.nrows()), CHUNK_WORDS)]
        if len(parts) == 1:
            unique, totals = parts[0]
        else:
            unique, index = tf.unique(tf.concat([keys for keys, _ in parts], 0))
            totals = tf.math.unsorted_segment_sum(tf.concat([t for _, t in parts], 0), index, tf.size(unique))
        del parts
        if min_count > 1:
            keep = totals >= min_count
            unique, totals = tf.boolean_mask(unique, keep), tf.boolean_mask(totals, keep)
        return unique, totals

    def _chunk_suffix_counts(self, starts, first_row: int):
        """_suffix_counts of the words first_row, first_row + 1, ... (starts: [w, None])."""
        import tensorflow as tf

        rows = starts.value_rowids() + first_row  # [s]
        flat = starts.flat_values  # [s]
        words = tf.gather(self._words, rows)
        suffixes = tf.strings.substr(words, flat, tf.cast(tf.strings.length(words), tf.int64) - flat)
        later = tf.logical_and(flat > 0, self._params.include_joiner_token)
        keys = tf.strings.join([tf.where(later, "J", "W"), suffixes])
        unique, index = tf.unique(keys)
        totals = tf.math.unsorted_segment_sum(tf.gather(self._counts, rows), index, tf.size(unique))
        return unique, totals

    def _at_least(self, counts, thresh: int) -> Dict[str, int]:
        """The tokens counted >= thresh, with their counts; later-start suffixes get the joiner."""
        import tensorflow as tf

        keys, totals = counts
        keep = totals >= thresh
        tokens = {}
        for key, total in zip(tf.boolean_mask(keys, keep).numpy().tolist(),
                              tf.boolean_mask(totals, keep).numpy().tolist()):
            suffix = key[1:].decode("utf-8")
            tokens[self._params.joiner + suffix if key[:1] == b"J" else suffix] = total
        return tokens
