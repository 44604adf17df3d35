"""WordPiece vocabularies: learn one from a corpus, load and check one.

A vocabulary is `vocab.txt`, one token per line, id = line number. Learned
vocabularies start with the five special tokens at ids 0-4
([PAD] [UNK] [CLS] [SEP] [MASK]); loaded vocabularies only need to contain them
somewhere, so Google's released BERT vocabularies (where [UNK] is 100) work too.
"""
import logging
import os
import uuid
from typing import List, Optional, Sequence

from components.pretraining_data import progress as progress_lib

logger = logging.getLogger(__name__)

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)

# The learner's lower frequency bound: 10 as tensorflow-text's default, but 2 below this
# many lines, where 10 would leave a small corpus with single characters only.
SMALL_CORPUS_LINES = 100_000


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
                     do_lower_case: bool, sample_lines: Optional[int] = None,
                     input_flag: str = "--input_file", beam_pipeline_args: Optional[List[str]] = None,
                     pipeline=None, seed: int = 0,
                     progress_interval: float = progress_lib.DEFAULT_INTERVAL_SECONDS) -> int:
    """Learns a WordPiece vocabulary from the words of the whole corpus (or a uniform sample
    of its lines), counted by a Beam job, with tensorflow-text's BERT vocabulary learner
    (computed as wordpiece_learner.py does: the same tokens, in minutes at corpus scale).

    Words are split the way the data job splits them (same text cleaning, then BERT's
    basic tokenisation, lower-cased and accent-stripped if do_lower_case); see
    word_counts.py for the job and what bounds its memory.

    Args:
      input_patterns: files or globs (comma-separated strings allowed), corpus format.
      output_path: where vocab.txt goes (written to a temp name, then renamed).
      vocab_size: target size, special tokens included; the learner may return
        fewer tokens for a small corpus.
      do_lower_case: uncased vocabulary.
      sample_lines: None counts every line; N keeps each non-blank line with probability
        N / (non-blank lines), a uniform sample of about N lines of the whole corpus.
      input_flag: the caller's name for input_patterns in error messages (`bertpipe run`
        calls them --corpus).
      beam_pipeline_args: e.g. ["--runner=DataflowRunner", ...]; default: DirectRunner,
        2 threads (beam_job.beam_options).
      pipeline: an existing, not yet run pipeline (a TFX Beam component's) to count on
        instead; beam_pipeline_args are then ignored. It is run here.
      seed: seeds the sample.
      progress_interval: seconds between progress lines in the log.
    Returns:
      The number of tokens written; 0 for a dry run (DataflowRunner --dry_run=True), which
      builds the counting job and writes nothing.
    """
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ValueError(f"vocab_size={vocab_size} is too small: it must leave room beyond the "
                         f"{len(SPECIAL_TOKENS)} special tokens (BERT uses 30522).")
    if sample_lines is not None and sample_lines < 1:
        raise ValueError(f"--vocab_sample_lines={sample_lines} must be >= 1 (leave it out to count "
                         "the whole corpus).")
    import apache_beam as beam

    from components.pretraining_data import beam_job, text_reader, word_counts, wordpiece_learner

    files = text_reader.expand_patterns(input_patterns, input_flag)
    total_bytes = beam_job.input_bytes(files)
    ranges = text_reader.split_ranges(files, beam_job.range_bytes_for(total_bytes))
    staging_dir = f"{output_path}.counts-{uuid.uuid4().hex[:12]}"
    stages = {"read": 1.0} if sample_lines is None else {"read": 0.7, "count lines": 0.3}
    progress = progress_lib.Progress("bertpipe vocab", total_bytes, stages, "lines_counted")
    try:
        if pipeline is None:
            pipeline = beam.Pipeline(options=beam_job.beam_options(beam_pipeline_args))
        with beam_job.project_on_worker_path(), progress_lib.reporting(progress, progress_interval) as job_id:
            with pipeline as p:
                word_counts.build_pipeline(p, ranges, staging_dir, do_lower_case, sample_lines, seed,
                                           progress_id=job_id)
        if beam_job.is_dry_run(pipeline):
            return 0  # the job was built, not submitted: nothing to learn from
        per_file = {f.path: {"bytes": f.size_bytes, "invalid_utf8_bytes": 0, "documents": 0, "lines": 0}
                    for f in files}
        for path, values in word_counts.read_stats(staging_dir).items():
            per_file.setdefault(path, {"bytes": 0}).update(values)
        text_reader.check_corpus_read(per_file, text_reader.split_patterns(input_patterns), input_flag)
        counts = word_counts.read_counts(staging_dir)
    finally:
        beam_job.delete_tree(staging_dir)
    num_lines = sum(v.get("lines", 0) for v in per_file.values())
    if not counts:
        raise ValueError(f"{input_flag} {list(text_reader.split_patterns(input_patterns))}: no words in the "
                         f"{num_lines} line(s) counted" + (f" (--vocab_sample_lines={sample_lines}: sample more)"
                                                           if sample_lines is not None else "") + ".")
    logger.info("bertpipe vocab: learning %s WordPiece tokens from %s distinct words.", f"{vocab_size:,}",
                f"{len(counts):,}")
    tokens = wordpiece_learner.learn(
        counts,
        vocab_size=vocab_size,
        reserved_tokens=list(SPECIAL_TOKENS),
        lower_thresh=2 if num_lines < SMALL_CORPUS_LINES else 10,
        on_step=_log_search_step,
    )
    if list(tokens[:len(SPECIAL_TOKENS)]) != list(SPECIAL_TOKENS):
        raise RuntimeError(f"The vocabulary learner did not put {SPECIAL_TOKENS} first.")
    write_vocabulary(tokens, output_path)
    return len(tokens)


def _log_search_step(step) -> None:
    """One line per threshold the learner tries (~20 for a 30k vocabulary), with a bound on the time left."""
    per_step = step.elapsed / step.step
    logger.info("bertpipe vocab: learner step %d: frequency threshold %s gives %s tokens, %s elapsed, "
                "%s", step.step, f"{step.thresh:,}", f"{step.vocab_size:,}", progress_lib.clock(step.elapsed),
                f"ETA at most {progress_lib.clock(per_step * step.steps_left_at_most)}"
                if step.steps_left_at_most else "done")


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
