"""Text cleaning before tokenisation, shared by the tokenizer and the vocabulary learner.

`clean_text` does what BERT's BasicTokenizer._clean_text does and tensorflow-text's
FastBertTokenizer does not quite: BERT *removes* control and format characters
(FastBertTokenizer turns them into spaces, splitting "a\\u00adb" in two), and U+FFFD.
Invalid UTF-8 is dropped first (`valid_utf8`), as the original's decode("utf-8", "ignore").
"""
from typing import List, Sequence

import tensorflow as tf

# Cc (except \t \n \r, which BERT treats as whitespace), Cf, and U+FFFD.
_REMOVED_CHARS = r"[\x{0}-\x{8}\x{B}\x{C}\x{E}-\x{1F}\x{7F}-\x{9F}\p{Cf}\x{FFFD}]"


def clean_text(lines: tf.Tensor) -> tf.Tensor:
    """tf.string [N] (valid UTF-8) -> tf.string [N] without control/format characters."""
    return tf.strings.regex_replace(lines, _REMOVED_CHARS, "")


def valid_utf8(lines: Sequence[bytes]) -> List[bytes]:
    """Drops invalid UTF-8 bytes, as the original's decode("utf-8", "ignore").

    Checking the joined batch costs one C-speed decode; only a batch with a bad
    line pays a per-line fix (tf.strings.unicode_transcode would cost ~0.1 s/MB
    on every batch).
    """
    lines = [x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in lines]
    try:
        b"\n".join(lines).decode("utf-8")
        return lines
    except UnicodeDecodeError:
        return [x.decode("utf-8", "ignore").encode("utf-8") for x in lines]
