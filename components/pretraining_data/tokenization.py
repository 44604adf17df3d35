"""Batched BERT tokenisation (BasicTokenizer + WordPiece) with tensorflow-text.

One call tokenises thousands of lines in C++: `FastBertTokenizer` lower-cases,
NFD-normalises and strips accents when uncased, splits on whitespace,
punctuation and CJK characters, then applies WordPiece with BERT's 100-byte
word limit ([UNK] beyond it). Before it, text_cleaning drops invalid UTF-8 and
removes the characters BERT's BasicTokenizer removes.
"""
from typing import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from components.pretraining_data import vocab as vocab_lib
from components.pretraining_data.text_cleaning import clean_text, valid_utf8

class BertTokenizer:
    """Lines of text -> WordPiece ids, in batches.

    Args:
      vocab: tokens in id order (from vocab.load_vocabulary).
      do_lower_case: uncased (lower-case + strip accents) or cased.
    """

    def __init__(self, vocab: Sequence[str], do_lower_case: bool):
        self.vocab = list(vocab)
        self.do_lower_case = bool(do_lower_case)
        self._tokenizer = tf_text.FastBertTokenizer(
            vocab=self.vocab,
            suffix_indicator="##",
            max_bytes_per_word=100,  # BERT's max_input_chars_per_word
            token_out_type=tf.int64,
            unknown_token=vocab_lib.UNK,
            lower_case_nfd_strip_accents=self.do_lower_case,
        )
        # One graph call per batch, not ~20 eager ops: the GIL is released once for
        # the whole call instead of re-taken after every op, so a tokenising thread
        # is not held up by other threads running Python (Beam's multi-threaded
        # workers). Traced once per signature; without autograph (there is no
        # Python control flow to convert), tracing takes ~0.1 s instead of ~1 s.
        self._tokenize_lines = tf.function(
            self._ids_and_lengths, input_signature=[tf.TensorSpec([None], tf.string)],
            autograph=False)
        self._tokenize_text = tf.function(
            lambda text: self._ids_and_lengths(tf.strings.split(text, "\n")),
            input_signature=[tf.TensorSpec([], tf.string)], autograph=False)

    def tokenize(self, lines: Sequence[bytes]):
        """Tokenises N lines (UTF-8 bytes or str).

        Returns:
          (flat ids int32 [total_tokens], tokens per line int64 [N]).
        """
        if len(lines) == 0:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        return _to_numpy(self._tokenize_lines(tf.constant(valid_utf8(lines), tf.string)))

    def tokenize_text(self, text: bytes):
        """Tokenises the lines of `text` (bytes, lines joined by "\\n", none empty).

        Same as tokenize(text.split(b"\\n")), but the lines are split by a TF op, so no
        Python runs per line (and the GIL is free while the ops run).
        Returns:
          (flat ids int32 [total_tokens], tokens per line int64 [N]).
        """
        if not text:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        return _to_numpy(self._tokenize_text(tf.constant(valid_utf8([text])[0])))

    def _ids_and_lengths(self, lines: tf.Tensor):
        """tf.string [N] -> (ids int64 [total_tokens], tokens per line int64 [N])."""
        ragged = self._tokenizer.tokenize(clean_text(lines))
        return ragged.flat_values, ragged.row_lengths()


def _to_numpy(ids_and_lengths):
    ids, lengths = ids_and_lengths
    return ids.numpy().astype(np.int32), lengths.numpy().astype(np.int64)
