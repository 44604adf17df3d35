"""The vocabulary's Beam job: corpus -> {word: count} over the whole corpus, or over a
uniform sample of its lines.

    ranges of the input files                     (driver: list files, cut ranges)
      [--vocab_sample_lines: non-blank lines per range, summed]   (side input)
      -> each range's lines, cleaned and split   (parallel over ranges; text_cleaning
         into words by BERT's basic tokenisation  + tensorflow-text's BasicTokenizer,
         and counted, a batch of lines at a time  as the learner has always counted)
      -> the range's counts cut into NUM_SHARDS   (by a hash of the word: one element per
         {word: count} dicts                      shard and flush, not one per word)
      -> CombinePerKey(merge the dicts)           (one dict per shard; partial merges
                                                   before the shuffle)
      -> the words the learner can use, as "word<TAB>count" text shards under a
         staging directory, which the driver reads before the learner runs

A whole dict per element, not a (word, count) pair: Beam's per-element cost in the Python
SDK (~8.5 us, fitted to the count's times at 100 MB and 1 GB) on every partial count was
most of the job's time (64 ranges x 80,000-250,000 distinct words each); merging dicts is
one dict update per word.

Memory: a worker holds one batch of lines and at most MAX_PARTIAL_WORDS partial counts
(flushed downstream when full), whatever the corpus size; the combine holds one shard's
words, 1/NUM_SHARDS of the distinct words. The driver holds the distinct words the learner
gets, at most LEARNER_MAX_INPUT_WORDS (tensorflow-text's own `max_input_tokens`, which keeps that many
most frequent words): rarer words are dropped on the workers, by a count cut-off taken
from the histogram of counts. Below that many distinct words nothing is dropped, and the
vocabulary is the one the in-process learner made from the same lines.

Sampling (`sample_lines`): each non-blank line is kept independently with probability
min(1, sample_lines / total non-blank lines), drawn from a generator seeded by
(seed, range index): a uniform sample of about sample_lines lines from the whole corpus
(not its first lines), the same for the same corpus and seed with any number of workers.
"""
from __future__ import annotations

import json
import zlib
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from components.pretraining_data import progress as progress_lib
from components.pretraining_data import text_reader

# Flush a worker's partial counts downstream at this many distinct words (~100 MB).
MAX_PARTIAL_WORDS = 500_000
# Words are grouped into this many shards (by crc32, the same on every worker) for the combine.
NUM_SHARDS = 64
# Lines tokenised per tensorflow-text call.
BATCH_LINES = 8192
# tensorflow-text's learner keeps at most this many most frequent words (`max_input_tokens`).
LEARNER_MAX_INPUT_WORDS = 5_000_000
COUNTS_DIR = "counts"
STATS_DIR = "_stats"
METRICS_NAMESPACE = "bertpipe.vocab"


def count_words(lines: List[bytes], do_lower_case: bool, counts: Dict[bytes, int]) -> None:
    """Adds the words of `lines` (raw UTF-8 bytes) to `counts` ({word bytes: count}).

    Text cleaning (text_cleaning.py) then tensorflow-text's BasicTokenizer, the splitter of
    its BERT vocabulary learner: the words bert_vocab_from_dataset would count. The batch is
    counted by tf.unique_with_counts (a C++ hash table; np.unique's sort of the words took a
    third of the time), then merged into `counts` once per distinct word.
    """
    import tensorflow as tf

    from components.pretraining_data import text_cleaning

    if not lines:
        return
    words = _basic_tokenizer(bool(do_lower_case)).tokenize(text_cleaning.clean_text(
        tf.constant(text_cleaning.valid_utf8(lines), tf.string))).flat_values
    if not int(tf.size(words)):
        return
    unique, _, n = tf.unique_with_counts(words)
    get = counts.get
    for word, c in zip(unique.numpy().tolist(), n.numpy().tolist()):
        counts[word] = get(word, 0) + c


_BASIC_TOKENIZERS: dict = {}


def _basic_tokenizer(lower_case: bool):
    """One BasicTokenizer per process and case setting (building it costs a graph trace)."""
    if lower_case not in _BASIC_TOKENIZERS:
        from tensorflow_text.python.ops import bert_tokenizer  # the learner's own splitter

        _BASIC_TOKENIZERS[lower_case] = bert_tokenizer.BasicTokenizer(lower_case=lower_case)
    return _BASIC_TOKENIZERS[lower_case]


def sample_probability(sample_lines: Optional[int], total_lines: int) -> float:
    """The chance each non-blank line is kept: 1 without sampling or when the corpus is smaller."""
    if sample_lines is None or total_lines <= sample_lines:
        return 1.0
    return sample_lines / total_lines


def _document_lines(file_range: text_reader.FileRange, stats: dict) -> Iterator[bytes]:
    """The non-blank lines of the documents `file_range` owns; fills stats' documents,
    invalid_utf8_bytes and text_bytes (bytes of those lines, for progress)."""
    for document in text_reader.read_documents(file_range):
        stats["documents"] += 1
        stats["invalid_utf8_bytes"] += text_reader.count_invalid_utf8(b"\n".join(document))
        stats["text_bytes"] += sum(len(line) + 1 for line in document)
        yield from document


class _CountLines(beam.DoFn):
    """(range index, [FileRange]) -> non-blank lines of the range (for the sampling rate)."""

    def __init__(self, progress_id: str):
        self._progress_id = progress_id

    def process(self, element):
        _, (file_range,) = element
        lines = num_bytes = 0
        for document in text_reader.read_documents(file_range):
            lines += len(document)
            num_bytes += sum(len(line) + 1 for line in document)
        progress_lib.add(self._progress_id, "count lines", num_bytes)
        yield lines


class _CountWords(beam.DoFn):
    """(range index, [FileRange]) -> (shard, {word: partial count}) pairs, and the range's
    reading stats written to <staging>/_stats/range-NNNNNN.json."""

    def __init__(self, do_lower_case: bool, staging_dir: str, sample_lines: Optional[int], seed: int,
                 progress_id: str):
        self._do_lower_case = do_lower_case
        self._staging_dir = staging_dir
        self._sample_lines = sample_lines
        self._seed = seed
        self._progress_id = progress_id
        self._bytes_read = Metrics.counter(METRICS_NAMESPACE, "text_bytes_read")
        self._lines_counted = Metrics.counter(METRICS_NAMESPACE, "lines_counted")

    def process(self, element, total_lines=0):
        import numpy as np

        range_index, (file_range,) = element
        p = sample_probability(self._sample_lines, total_lines)
        rng = np.random.default_rng([self._seed, range_index]) if p < 1.0 else None
        stats = {"documents": 0, "invalid_utf8_bytes": 0, "text_bytes": 0, "lines": 0}
        counts: Dict[bytes, int] = {}
        batch: List[bytes] = []
        reported = 0

        def flush_batch():
            nonlocal batch, reported
            if rng is not None:  # one draw per line, in file order: the same sample on any worker
                keep = rng.random(len(batch)) < p
                batch = [line for line, k in zip(batch, keep) if k]
            count_words(batch, self._do_lower_case, counts)
            stats["lines"] += len(batch)
            self._lines_counted.inc(len(batch))
            self._bytes_read.inc(stats["text_bytes"] - reported)
            progress_lib.add(self._progress_id, "read", stats["text_bytes"] - reported, lines_counted=len(batch))
            reported = stats["text_bytes"]
            batch = []

        for line in _document_lines(file_range, stats):
            batch.append(line)
            if len(batch) >= BATCH_LINES:
                flush_batch()
                if len(counts) >= MAX_PARTIAL_WORDS:
                    yield from _sharded(counts)
                    counts = {}
        flush_batch()
        yield from _sharded(counts)
        path = FileSystems.join(self._staging_dir, STATS_DIR, f"range-{range_index:06d}.json")
        with FileSystems.create(path) as f:
            f.write(json.dumps({file_range.path: {k: v for k, v in stats.items() if k != "text_bytes"}},
                               sort_keys=True).encode())


def _sharded(counts: Dict[bytes, int]) -> Iterator[Tuple[int, Dict[str, int]]]:
    """{word bytes: count} -> (shard, {word: count}) for each shard with words."""
    shards: List[Dict[str, int]] = [{} for _ in range(NUM_SHARDS)]
    for word, c in counts.items():
        # The tokenizer's words are valid UTF-8 (invalid bytes were dropped before it).
        shards[zlib.crc32(word) % NUM_SHARDS][word.decode("utf-8", "ignore")] = c
    for shard, words in enumerate(shards):
        if words:
            yield shard, words


class _MergeCounts(beam.CombineFn):
    """{key: count} dicts -> one dict of the summed counts (a shard's words, or a histogram)."""

    def create_accumulator(self) -> Dict:
        return {}

    def add_input(self, accumulator: Dict, counts: Dict) -> Dict:
        get = accumulator.get
        for key, c in counts.items():
            accumulator[key] = get(key, 0) + c
        return accumulator

    def merge_accumulators(self, accumulators) -> Dict:
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for accumulator in accumulators:
            merged = self.add_input(merged, accumulator)
        return merged

    def extract_output(self, accumulator: Dict) -> Dict:
        return accumulator


def count_cutoff(histogram: Dict[int, int], max_words: int) -> int:
    """The smallest count c such that the words counted >= c times are at most max_words
    ({count: number of words with that count}); 0 keeps every word."""
    if sum(histogram.values()) <= max_words:
        return 0
    kept = 0
    for count in sorted(histogram, reverse=True):
        if kept + histogram[count] > max_words:
            return count + 1
        kept += histogram[count]
    return 0


# Module functions, not lambdas: a lambda is pickled with its code object, which names the
# file it was defined in (a path of the submitting machine) in the job sent to Dataflow.
def _histogram(shard_counts: Tuple[int, Dict[str, int]]) -> Dict[int, int]:
    """A shard's {count: number of words counted that many times}."""
    histogram: Dict[int, int] = {}
    for c in shard_counts[1].values():
        histogram[c] = histogram.get(c, 0) + 1
    return histogram


def _frequent_lines(shard_counts: Tuple[int, Dict[str, int]], histogram: Dict[int, int],
                    max_words: int) -> Iterator[str]:
    """A shard's "word<TAB>count" lines, of the words counted at least the cut-off."""
    cutoff = count_cutoff(histogram, max_words)
    for word, c in shard_counts[1].items():
        if c >= cutoff:
            yield f"{word}\t{c}"


def build_pipeline(pipeline: beam.Pipeline, ranges: Sequence[text_reader.FileRange], staging_dir: str,
                   do_lower_case: bool, sample_lines: Optional[int] = None, seed: int = 0,
                   max_words: int = LEARNER_MAX_INPUT_WORDS, progress_id: str = "") -> None:
    """Adds the count to `pipeline`: <staging_dir>/counts/words-*.tsv and _stats/range-*.json."""
    spread = (pipeline
              | "FileRanges" >> beam.Create(list(enumerate(ranges)), reshuffle=False)
              | "SpreadRanges" >> beam.GroupByKey())  # one range per key: spreads them over workers
    side = {}
    if sample_lines is not None:
        side["total_lines"] = beam.pvalue.AsSingleton(
            spread | "CountLines" >> beam.ParDo(_CountLines(progress_id)) | "TotalLines" >> beam.CombineGlobally(sum))
    counts = (spread
              | "CountWords" >> beam.ParDo(_CountWords(do_lower_case, staging_dir, sample_lines, seed,
                                                       progress_id), **side)
              | "SumCounts" >> beam.CombinePerKey(_MergeCounts()))
    histogram = (counts
                 | "ShardHistograms" >> beam.Map(_histogram)
                 | "Histogram" >> beam.CombineGlobally(_MergeCounts()))
    _ = (counts
         | "KeepFrequent" >> beam.FlatMap(_frequent_lines, histogram=beam.pvalue.AsSingleton(histogram),
                                          max_words=max_words)
         | "WriteCounts" >> beam.io.WriteToText(FileSystems.join(staging_dir, COUNTS_DIR, "words"),
                                                file_name_suffix=".tsv"))


def read_counts(staging_dir: str) -> Dict[str, int]:
    """The job's count shards -> {word: count}, in word order (a stable input for the learner)."""
    counts: Dict[str, int] = {}
    pattern = FileSystems.join(staging_dir, COUNTS_DIR, "words*.tsv")
    for m in sorted(FileSystems.match([pattern])[0].metadata_list, key=lambda m: m.path):
        with FileSystems.open(m.path) as f:
            for line in f.read().decode("utf-8").split("\n"):
                if line:
                    word, _, c = line.rpartition("\t")
                    counts[word] = counts.get(word, 0) + int(c)
    return dict(sorted(counts.items()))


def read_stats(staging_dir: str) -> Dict[str, Dict[str, int]]:
    """The ranges' stats summed per input file: {path: {documents, invalid_utf8_bytes, lines}}."""
    per_file: Dict[str, Dict[str, int]] = {}
    for m in FileSystems.match([FileSystems.join(staging_dir, STATS_DIR, "range-*.json")])[0].metadata_list:
        with FileSystems.open(m.path) as f:
            for path, values in json.loads(f.read().decode()).items():
                totals = per_file.setdefault(path, {})
                for key, value in values.items():
                    totals[key] = totals.get(key, 0) + value
    return per_file

