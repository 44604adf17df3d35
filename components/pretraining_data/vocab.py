"""WordPiece vocabularies: learn one from a corpus, load and check one.

A vocabulary is `vocab.txt`, one token per line, id = line number. Learned
vocabularies start with the five special tokens at ids 0-4
([PAD] [UNK] [CLS] [SEP] [MASK]); loaded vocabularies only need to contain them
somewhere, so Google's released BERT vocabularies (where [UNK] is 100) work too.
"""
import os
import uuid
from typing import Iterator, List, Sequence

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)

# Learning reads at most this many lines: the word counts, not the corpus size,
# decide the vocabulary, and a sample of this size has the frequent words.
DEFAULT_MAX_LINES = 2_000_000


def load_vocabulary(path: str) -> List[str]:
    """Reads vocab.txt (local or gs://) into a list of tokens in id order.

    Raises:
      ValueError: naming `path`, if it is empty, has blank or duplicate tokens,
        or lacks one of [PAD] [UNK] [CLS] [SEP] [MASK].
    """
    from apache_beam.io.filesystems import FileSystems  # heavy import, only when used

    try:
        with FileSystems.open(path) as f:
            data = f.read()
    except Exception as e:
        raise ValueError(f"Cannot read vocabulary file {path!r} (--vocab_file): {e}") from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"Vocabulary file {path!r} is not valid UTF-8: {e}") from e
    # The original strips each line; a trailing newline does not make a token.
    tokens = [line.strip() for line in text.split("\n")]
    if tokens and tokens[-1] == "":
        tokens.pop()
    if not tokens:
        raise ValueError(f"Vocabulary file {path!r} is empty. Learn one with `bertpipe vocab`.")
    seen = {}
    for i, token in enumerate(tokens):
        if not token:
            raise ValueError(f"Vocabulary file {path!r}: line {i + 1} is blank; every line "
                             "must hold one token.")
        if token in seen:
            raise ValueError(f"Vocabulary file {path!r}: token {token!r} appears on lines "
                             f"{seen[token] + 1} and {i + 1}; tokens must be unique.")
        seen[token] = i
    missing = [t for t in SPECIAL_TOKENS if t not in seen]
    if missing:
        raise ValueError(
            f"Vocabulary file {path!r} lacks the special token(s) {missing}. A BERT vocabulary "
            f"needs all of {list(SPECIAL_TOKENS)}; learn one with `bertpipe vocab` (which puts "
            "them at ids 0-4) or add the missing lines.")
    return tokens


def learn_vocabulary(input_patterns: Sequence[str], output_path: str, vocab_size: int,
                     do_lower_case: bool, max_lines: int = DEFAULT_MAX_LINES,
                     input_flag: str = "--input_file") -> int:
    """Learns a WordPiece vocabulary with tensorflow-text's BERT vocabulary learner.

    Words are split the way the data job splits them (same text cleaning, then
    BERT's basic tokenisation, lower-cased and accent-stripped if do_lower_case).

    Args:
      input_patterns: files or globs (comma-separated strings allowed), corpus format.
      output_path: where vocab.txt goes (written to a temp name, then renamed).
      vocab_size: target size, special tokens included; the learner may return
        fewer tokens for a small corpus.
      do_lower_case: uncased vocabulary.
      max_lines: read at most this many lines (in file order).
      input_flag: the caller's name for input_patterns in error messages (`bertpipe run`
        calls them --corpus).
    Returns:
      The number of tokens written.
    """
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ValueError(f"vocab_size={vocab_size} is too small: it must leave room beyond the "
                         f"{len(SPECIAL_TOKENS)} special tokens (BERT uses 30522).")
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner_lib

    from components.pretraining_data import text_reader

    files = text_reader.expand_patterns(input_patterns, input_flag)
    read: dict = {}
    lines = list(_iter_lines(files, max_lines, read))
    text_reader.check_corpus_read(read, text_reader.split_patterns(input_patterns), input_flag)
    word_counts = _count_words(lines, do_lower_case)
    # The learner keeps words seen at least lower_thresh times; its default (10)
    # leaves a small corpus with single characters only.
    tokens = learner_lib.learn(
        word_counts,
        vocab_size=vocab_size,
        reserved_tokens=list(SPECIAL_TOKENS),
        lower_thresh=2 if len(lines) < 100_000 else 10,
    )
    if list(tokens[:len(SPECIAL_TOKENS)]) != list(SPECIAL_TOKENS):
        raise RuntimeError(f"The vocabulary learner did not put {SPECIAL_TOKENS} first.")
    write_vocabulary(tokens, output_path)
    return len(tokens)


def write_vocabulary(tokens: Sequence[str], output_path: str) -> None:
    """Writes one token per line to a temp file next to output_path, then renames it."""
    write_text(output_path, "".join(f"{t}\n" for t in tokens))


def write_text(output_path: str, text: str) -> None:
    """Writes text (UTF-8) to a temp file next to output_path, then renames it."""
    data = text.encode("utf-8")
    tmp = f"{output_path}.tmp-{uuid.uuid4().hex}"
    if "://" not in output_path:
        parent = os.path.dirname(os.path.abspath(output_path))
        os.makedirs(parent, exist_ok=True)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, output_path)  # atomic: readers see the old or the new file
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(tmp) as f:
        f.write(data)
    if FileSystems.exists(output_path):
        FileSystems.delete([output_path])
    FileSystems.rename([tmp], [output_path])


def _count_words(lines: List[bytes], do_lower_case: bool) -> dict:
    """{word: count} after BERT basic tokenisation, as bert_vocab_from_dataset counts them.

    Equivalent to tensorflow-text's `count_words`, but counts each batch with
    np.unique instead of a per-word Python Counter update.
    """
    import numpy as np
    import tensorflow as tf
    from tensorflow_text.python.ops import bert_tokenizer  # the learner's own splitter

    from components.pretraining_data import text_cleaning

    basic = bert_tokenizer.BasicTokenizer(lower_case=bool(do_lower_case))
    counts = {}
    for start in range(0, len(lines), 8192):
        batch = text_cleaning.clean_text(
            tf.constant(text_cleaning.valid_utf8(lines[start:start + 8192]), tf.string))
        words = basic.tokenize(batch).flat_values.numpy()
        if not len(words):
            continue
        unique, n = np.unique(words, return_counts=True)
        for word, c in zip(unique.tolist(), n.tolist()):
            counts[word] = counts.get(word, 0) + c
    return {w.decode("utf-8", "ignore"): c for w, c in counts.items()}


def _iter_lines(files, max_lines: int, read: dict) -> Iterator[bytes]:
    """The non-blank lines of `files`, at most max_lines. Fills `read` as
    text_reader.check_corpus_read wants it, {path: {bytes, invalid_utf8_bytes, documents}},
    counting invalid UTF-8 a document at a time. Past max_lines a file's rest is not read,
    so its share is a lower bound there; the data step counts every byte."""
    from components.pretraining_data import text_reader

    n = 0
    for f in files:
        counts = read.setdefault(f.path, {"bytes": f.size_bytes, "invalid_utf8_bytes": 0, "documents": 0})
        for file_range in text_reader.split_ranges([f], range_bytes=max(1, f.size_bytes)):
            for document in text_reader.read_documents(file_range):
                counts["documents"] += 1
                counts["invalid_utf8_bytes"] += text_reader.count_invalid_utf8(b"\n".join(document))
                for line in document:
                    yield line
                    n += 1
                    if n >= max_lines:
                        return
