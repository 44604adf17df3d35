"""The Apache Beam job: corpus text -> sharded BERT pretraining TFRecords (train/ and eval/).

    ranges of the input files                       (driver: list files, cut ranges)
      -> documents, each hashed to (split, bucket);  (parallel over ranges; _documents.c)
         a range's documents go to one spill file, grouped by bucket
      -> GroupByKey(split, bucket) of spill-file slices
      -> tokenise + instance spans, shuffled        (parallel over buckets; bucket.py)
         written as piece files (tokens + spans, ~10x smaller than the records)
      -> GroupByKey(shard) of piece paths
      -> shard s of train and of eval: their pieces' (parallel over shards; _records.c)
         records, built and written once, in piece order

Why this shape: instances need a pool of other documents for "random next
sentence", so documents are grouped into buckets of ~1 MB of text (bucket.py).
Only file slices and paths go through Beam's shuffles, never the text or the
records: on the DirectRunner every shuffled element passes through the driver
process, which then held the corpus in memory and competed with the workers
for the CPU. So every worker's memory is bounded by one range segment, one
bucket or one piece, whatever the size of the corpus. The records themselves
are built by the shard writers, so they are written once, not written as
pieces and copied.

Pieces: a split has P = max(buckets, num_shards) pieces; piece p holds
instances of bucket p % buckets and goes to shard p % num_shards, and a shard
is its pieces in p order. With at least as many buckets as shards, a bucket
is one piece; with fewer, a bucket's shuffled instances are cut into several
pieces, so that no shard is left empty needlessly. Every step is keyed and
seeded by (split, bucket) or by piece, and files are joined in a fixed order,
so the same inputs + seed + num_shards give byte-identical files with any
number of workers.

Everything is written under a staging directory next to the output
(`<output_dir>.staging-<id>`) and renamed into place only after the pipeline
succeeded, so a failed run leaves nothing where ExampleGen would read it.
"""
import contextlib
import functools
import gc
import json
import logging
import math
import os
import shutil
import sys
import threading
import time
import uuid
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from components import beam_data_plane
from components.pretraining_data import _documents
from components.pretraining_data import bucket as bucket_lib
from components.pretraining_data import progress as progress_lib
from components.pretraining_data import staging
from components.pretraining_data import text_reader
from components.pretraining_data import vocab as vocab_lib
from components.pretraining_data.options import PretrainingDataOptions

# ~1 MB of text per bucket: a few hundred to a few thousand documents to draw
# random next sentences from, one tokeniser call, ~30k instances at dupe_factor 10.
DEFAULT_BUCKET_BYTES = 1 << 20
MANIFEST_NAME = "manifest.json"
_STATS_DIR = "_stats"  # per shard index: statistics of the buckets and records it got
_SPILL_DIR = "_documents"  # per input range: its documents, grouped by bucket
_PIECES_DIR = "_pieces"  # per piece: a bucket's instances (spans) for one shard
METRICS_NAMESPACE = "bertpipe.data"  # the job's Beam counters (Dataflow shows them live)
# Shares of the job's time per stage (reading + spilling, tokenising + instances, records),
# roughly as measured on the DirectRunner; they weigh the progress log's fraction done.
PROGRESS_STAGES = {"read": 0.1, "instances": 0.5, "records": 0.4}
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shard_name(split: str, shard: int, num_shards: int) -> str:
    return f"{split}/part-{shard:05d}-of-{num_shards:05d}.tfrecord"


def num_buckets_for(total_bytes: int, eval_fraction: float, bucket_bytes: int) -> Dict[str, int]:
    """Buckets per split, from the input size (known before reading, so no extra pass)."""
    total = max(1, math.ceil(total_bytes / bucket_bytes))
    eval_buckets = max(1, round(total * eval_fraction))
    return {bucket_lib.TRAIN: max(1, total - eval_buckets) if eval_fraction else total,
            bucket_lib.EVAL: eval_buckets}


class _SpillDocuments(beam.DoFn):
    """(range index, [FileRange]) -> ((split, bucket), (spill path, offset, length)).

    Reads the range's documents, hashes each to (split, bucket) (in C, without the
    GIL: _documents.c), and writes them to one spill file, grouped by bucket; only
    the slices go through the shuffle.
    """

    def __init__(self, options: PretrainingDataOptions, num_buckets: Dict[str, int],
                 staging_dir: str, vocab_file: str, progress_id: str = ""):
        self._options = options
        self._num_buckets = num_buckets
        self._staging_dir = staging_dir
        self._vocab_file = vocab_file
        self._progress_id = progress_id
        self._bytes_read = Metrics.counter(METRICS_NAMESPACE, "text_bytes_read")

    def setup(self):
        # Import TensorFlow and build the tokenizer in the background while this
        # stage reads: the next stage needs them, and the import is seconds of work
        # that would otherwise start only when this stage is done.
        threading.Thread(target=_tokenizer_for, daemon=True,
                         args=(self._vocab_file, self._options.do_lower_case)).start()

    def process(self, element):
        range_index, (file_range,) = element  # grouped by its unique index: one range
        by_bucket: Dict[Tuple[str, int], List[bytes]] = {}
        read = {"bytes": 0, "invalid_utf8_bytes": 0, "documents": 0}
        for segment, prev_blank, limit in text_reader.read_segments(file_range):
            # Segments overlap by the tail of a document at most (a range reads on to
            # finish it), so the byte counts are those of the file to within that.
            read["bytes"] += len(segment)
            read["invalid_utf8_bytes"] += text_reader.count_invalid_utf8(segment)
            blocks, num_documents = _documents.bucket_documents(
                segment, limit, prev_blank, self._options.random_seed & (2**64 - 1),
                self._options.eval_fraction, self._num_buckets[bucket_lib.TRAIN],
                self._num_buckets[bucket_lib.EVAL])
            read["documents"] += num_documents
            self._bytes_read.inc(len(segment))
            progress_lib.add(self._progress_id, "read", len(segment), documents_read=num_documents)
            for split_index, bucket_index, block in blocks:
                by_bucket.setdefault((bucket_lib.SPLITS[split_index], bucket_index), []).append(
                    block)
        # What reading found, per file: finalize_output tells an empty corpus from one of
        # blank lines, and text from binary data, with these.
        _write_json({file_range.path: read}, FileSystems.join(
            self._staging_dir, _STATS_DIR, f"range-{range_index:06d}.json"), lambda x: x)
        if not by_bucket:
            return
        path = FileSystems.join(self._staging_dir, _SPILL_DIR, f"range-{range_index:06d}.docs")
        offset = 0
        with FileSystems.create(path) as f:
            for key in sorted(by_bucket):
                block = b"".join(by_bucket[key])
                f.write(block)
                yield key, (path, offset, len(block))
                offset += len(block)


def encode_documents(documents: Iterable[Tuple[bytes, bytes]]) -> bytes:
    """(hash, text) pairs -> a spill block, as _documents.c writes it (decode_documents'
    inverse; for tests and benchmarks that make buckets without the spill stage)."""
    return b"".join(h + len(text).to_bytes(4, "little") + text for h, text in documents)


def decode_documents(block: bytes) -> Iterator[Tuple[bytes, bytes]]:
    """A spill block (documents back to back, each hash16 | uint32 length | lines joined
    by newlines; written by _documents.c) -> (hash, text) pairs.

    The Python statement of the format, for tests; the job itself hands whole blocks
    to bucket.process_spill_blocks, which parses them in C."""
    pos = 0
    while pos < len(block):
        size = int.from_bytes(block[pos + 16:pos + 20], "little")
        yield block[pos:pos + 16], block[pos + 20:pos + 20 + size]
        pos += 20 + size


def _read_slice(path: str, offset: int, length: int) -> bytes:
    if "://" in path:
        with FileSystems.open(path) as f:
            f.seek(offset)
            data = f.read(length)
    else:  # local: one pread (GIL released), without Beam's per-open bookkeeping
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.pread(fd, length, offset)
        finally:
            os.close(fd)
    if len(data) != length:
        raise IOError(f"{path}: expected {length} bytes at offset {offset}, got {len(data)} "
                      "(the staging directory was changed while the job ran?).")
    return data


def piece_ids(bucket_index: int, num_buckets: int, num_shards: int) -> List[int]:
    """The pieces of a bucket: p in [0, max(num_buckets, num_shards)) with p % num_buckets == bucket."""
    return list(range(bucket_index, max(num_buckets, num_shards), num_buckets))


_TOKENIZER_LOCK = threading.Lock()


def _tokenizer_for(vocab_file: str, do_lower_case: bool):
    """The BertTokenizer, built once per process: importing TensorFlow and
    building the tokenizer's model take seconds, and multi-threaded workers share it
    (TF ops are thread-safe). The lock makes concurrent callers wait for one build."""
    with _TOKENIZER_LOCK:
        return _build_tokenizer(vocab_file, do_lower_case)


@functools.lru_cache(maxsize=2)
def _build_tokenizer(vocab_file: str, do_lower_case: bool):
    started = time.monotonic()
    with _collector_paused():
        from components.pretraining_data import tokenization  # imports TensorFlow

        tokenizer = tokenization.BertTokenizer(vocab_lib.load_vocabulary(vocab_file),
                                               do_lower_case)
        tokenizer.tokenize_text(b"warm up")  # traces its graph here, not in the first bucket
    seconds = time.monotonic() - started
    # A fixed cost per process that every stage after reading waits for; the
    # benchmark reads it from `extra` to show what it bounds.
    logging.getLogger(__name__).info(
        "Tokenizer ready in %.1f s (TensorFlow import and model build).", seconds,
        extra={"tokenizer_build_seconds": seconds})
    return tokenizer


@contextlib.contextmanager
def _collector_paused():
    """Pauses automatic garbage collection while TensorFlow is imported.

    The import creates hundreds of thousands of objects that live as long as the
    process, and so sets off collections that free nothing (~600 young ones and 4
    full ones, each full one walking every object so far), all with the GIL held
    while the job's other threads wait. Without them the import takes 3.5 s of CPU
    instead of 4.8 s (medians of 6, measured).
    If the job has frozen its long-lived objects (_long_lived_objects_frozen), the
    new ones join them before the collector resumes; otherwise the first young
    collection afterwards would walk them all at once (~0.4 s, measured).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count():
            gc.freeze()
        if was_enabled:
            gc.enable()


class _MakeInstances(beam.DoFn):
    """((split, bucket), spill slices) -> (shard, (split, piece, path or None, stats or None)).

    Writes each piece (tokens + shuffled instance spans, bucket.InstancePiece) to
    a file under the staging dir; only its path goes through the next shuffle.
    The bucket's statistics ride along with its first piece, so that they reach the
    shard writers without a shuffle of their own.
    """

    def __init__(self, vocab_file: str, options: PretrainingDataOptions, staging_dir: str,
                 num_buckets: Dict[str, int], progress_id: str = ""):
        self._vocab_file = vocab_file
        self._options = options
        self._staging_dir = staging_dir
        self._num_buckets = num_buckets
        self._progress_id = progress_id
        self._instances_made = Metrics.counter(METRICS_NAMESPACE, "instances_made")

    def setup(self):
        self._tokenizer = _tokenizer_for(self._vocab_file, self._options.do_lower_case)

    def process(self, element):
        (split, bucket_index), slices = element
        blocks = [_read_slice(*s) for s in sorted(slices)]
        num_shards = self._options.num_shards
        piece_indices = piece_ids(bucket_index, self._num_buckets[split], num_shards)
        pieces, stats = bucket_lib.process_spill_blocks(
            split, bucket_index, blocks, self._tokenizer, self._options,
            num_pieces=len(piece_indices))
        bucket_stats = stats.__dict__
        self._instances_made.inc(stats.num_instances)
        progress_lib.add(self._progress_id, "instances", sum(len(b) for b in blocks),
                         instances_made=stats.num_instances)
        for index, piece in zip(piece_indices, pieces):
            path = None
            if piece is not None:
                path = FileSystems.join(self._staging_dir, _PIECES_DIR,
                                        f"{split}-{index:07d}.instances")
                with FileSystems.create(path) as f:
                    f.write(piece.to_bytes())
            if path or bucket_stats:  # an empty piece still carries the stats
                yield index % num_shards, (split, index, path, bucket_stats)
                bucket_stats = None


class _WriteShards(beam.DoFn):
    """(shard, [(split, piece, path, stats)]) -> shard `shard` of each split, and its stats.

    Each split's shard file is its pieces' records, in piece order. The records
    (~20x the text at dupe_factor 10) are built here (C, no GIL) and written once,
    straight into the file. Keyed by shard index alone, not (split, shard): the
    DirectRunner deals keys out to its workers round-robin in arrival order, and a
    (train, shard) key holds (1 - eval_fraction) / eval_fraction times the work of an
    (eval, shard) one, so split-keyed work could put most train shards on one worker.
    The statistics of the buckets and the masked-token counts go to
    _stats/shard-NNNNN.json, summed by finalize_output.
    """

    def __init__(self, vocab_file: str, options: PretrainingDataOptions, staging_dir: str,
                 progress_id: str = ""):
        self._vocab_file = vocab_file
        self._options = options
        self._staging_dir = staging_dir
        self._progress_id = progress_id
        self._instances_written = Metrics.counter(METRICS_NAMESPACE, "instances_written")

    def setup(self):
        self._vocab = bucket_lib.VocabInfo(vocab_lib.load_vocabulary(self._vocab_file))

    def process(self, element):
        shard, pieces = element
        pieces = sorted(pieces, key=lambda p: (p[0], p[1]))  # by (split, piece index)
        totals = [(split, stats) for split, _, _, stats in pieces if stats]
        for split in bucket_lib.SPLITS:
            paths = [path for s, _, path, _ in pieces if s == split and path]
            if not paths:
                continue
            target = FileSystems.join(self._staging_dir,
                                      shard_name(split, shard, self._options.num_shards))
            num_masked = 0
            with FileSystems.create(target) as out:
                for path in paths:
                    with FileSystems.open(path) as f:
                        piece = bucket_lib.InstancePiece.from_bytes(f.read())
                    num_masked += bucket_lib.write_records(
                        piece, self._vocab, self._options, out.write,
                        masked=not (self._options.dynamic_masking and split == bucket_lib.TRAIN))
                    self._instances_written.inc(len(piece.spans))
                    progress_lib.add(self._progress_id, instances_written=len(piece.spans))
            totals.append((split, {"num_masked": num_masked}))
        _write_json(totals, FileSystems.join(self._staging_dir, _STATS_DIR,
                                             f"shard-{shard:05d}.json"), _sum_stats)
        # Only now, with everything written: a retried work item still finds its pieces.
        FileSystems.delete([path for _, _, path, _ in pieces if path])


def _sum_stats(items):
    """[(split, {name: count})] -> {"<split>_<name>": total}."""
    total = {}
    for split, stats in items:
        for k, v in stats.items():
            total[f"{split}_{k}"] = total.get(f"{split}_{k}", 0) + v
    return total


def _read_stats(stats_dir: str) -> Dict[str, int]:
    """The shard writers' _stats/shard-*.json files, summed: {"<split>_<name>": total}."""
    total: Dict[str, int] = {}
    for m in FileSystems.match([FileSystems.join(stats_dir, "shard-*.json")])[0].metadata_list:
        with FileSystems.open(m.path) as f:
            for key, value in json.loads(f.read().decode()).items():
                total[key] = total.get(key, 0) + value
    return total


def _read_reading_stats(stats_dir: str) -> Dict[str, Dict[str, int]]:
    """The reading stage's _stats/range-*.json files, summed per input file:
    {path: {"bytes", "invalid_utf8_bytes", "documents"}}."""
    per_file: Dict[str, Dict[str, int]] = {}
    for m in FileSystems.match([FileSystems.join(stats_dir, "range-*.json")])[0].metadata_list:
        with FileSystems.open(m.path) as f:
            for path, counts in json.loads(f.read().decode()).items():
                totals = per_file.setdefault(path, {})
                for key, value in counts.items():
                    totals[key] = totals.get(key, 0) + value
    return per_file


def input_bytes(files: Sequence[text_reader.InputFile]) -> int:
    """The text size of `files` as the job plans with it (a gzip file counts 3x its size)."""
    return sum(f.size_bytes * (3 if text_reader.is_gzip(f.path) else 1) for f in files)


def range_bytes_for(total_bytes: int) -> int:
    """Bytes per input range: ~64 ranges, 1-64 MB each. Ranges only set read parallelism;
    the documents (and lines) read do not depend on them."""
    return int(min(64 << 20, max(1 << 20, total_bytes // 64)))


class DataJobProgress(progress_lib.Progress):
    """The data job's progress: text read, text made into instances, and records written.

    The records stage counts instances, not bytes: its share of the text is the share of
    the instances made so far that are written, times the text made into instances.
    """

    def __init__(self, total_bytes: int):
        super().__init__("prepare-data", total_bytes, PROGRESS_STAGES, "instances_written")

    def stage_fractions(self) -> Dict[str, float]:
        fractions = super().stage_fractions()
        with self._lock:
            written, made = self.counters.get("instances_written", 0), self.counters.get("instances_made", 0)
        fractions["records"] = fractions["instances"] * min(1.0, written / made) if made else 0.0
        return fractions


def build_pipeline(pipeline: beam.Pipeline, input_patterns: Sequence[str], vocab_file: str,
                   staging_dir: str, options: PretrainingDataOptions,
                   bucket_bytes: int = DEFAULT_BUCKET_BYTES, progress_id: str = ""):
    """Adds the job to an existing pipeline; writes shards + _stats.json under staging_dir.

    The caller creates staging_dir/train and staging_dir/eval first, and after the
    run calls finalize_output (empty shards, manifest, atomic rename). progress_id: a
    progress.reporting id the DoFns add to (in the driver's process).
    """
    files = text_reader.expand_patterns(input_patterns)
    total_bytes = input_bytes(files)
    num_buckets = num_buckets_for(total_bytes, options.eval_fraction, bucket_bytes)
    ranges = text_reader.split_ranges(files, range_bytes_for(total_bytes))

    pieces = (
        pipeline
        | "FileRanges" >> beam.Create(list(enumerate(ranges)), reshuffle=False)
        # Spreads the ranges over the workers. A GroupByKey on the (unique) range
        # index does what Reshuffle would, with a few transforms fewer to build and
        # run (the first bucket starts ~0.2 s sooner on the DirectRunner).
        | "SpreadRanges" >> beam.GroupByKey()
        | "SpillDocuments" >> beam.ParDo(_SpillDocuments(options, num_buckets, staging_dir, vocab_file,
                                                         progress_id))
        | "GroupIntoBuckets" >> beam.GroupByKey()
        | "MakeInstances" >> beam.ParDo(
            _MakeInstances(vocab_file, options, staging_dir, num_buckets, progress_id))
        .with_output_types(Tuple[int, Any]))
    _ = (
        pieces
        | "GroupIntoShards" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(_WriteShards(vocab_file, options, staging_dir, progress_id)))
    return {"num_buckets": num_buckets, "num_files": len(files), "input_bytes": total_bytes}


def _write_json(items, path, reduce_fn):
    with FileSystems.create(path) as f:
        f.write(json.dumps(reduce_fn(items), sort_keys=True).encode())


def run_prepare_data(input_patterns: List[str], vocab_file: str, output_dir: str,
                     options: PretrainingDataOptions,
                     beam_pipeline_args: Optional[List[str]] = None,
                     bucket_bytes: int = DEFAULT_BUCKET_BYTES,
                     pipeline: Optional[beam.Pipeline] = None,
                     input_flag: str = "--input_file",
                     manifest_extra: Optional[dict] = None,
                     progress_interval: float = progress_lib.DEFAULT_INTERVAL_SECONDS,
                     min_eval_instances: int = 1) -> dict:
    """Runs the job and puts output_dir/{train,eval}/part-*.tfrecord in place atomically.

    Args:
      input_patterns: files/globs (each may be comma-separated), corpus format.
      vocab_file: vocab.txt; checked before anything runs.
      output_dir: replaced as a whole if it exists (local: one rename).
      options: validated here.
      beam_pipeline_args: e.g. ["--runner=DataflowRunner", "--setup_file=./setup.py", ...];
        default: DirectRunner, multi_threading, 2 workers.
      pipeline: an existing, not yet run pipeline (e.g. a TFX Beam component's) to
        build the job on instead; beam_pipeline_args are then ignored. It is run here.
      input_flag: the caller's name for input_patterns in error messages (`bertpipe run`
        calls them --corpus).
      manifest_extra: more keys for the manifest (e.g. what identifies the inputs), written
        with it before the records are published.
      progress_interval: seconds between progress lines in the log (progress.py).
      min_eval_instances: with eval_fraction > 0, fewer eval instances than this fail the
        job (check_eval_split) instead of publishing an eval split that is too small.
    Returns:
      stats: num_train_instances, num_eval_instances, num_documents, num_train_documents,
      num_eval_documents, num_tokens, num_masked, input_bytes, seconds, ...
    Raises:
      ValueError: bad option, unreadable vocabulary, no input, or no instances made.
    """
    options.validate()
    patterns = text_reader.split_patterns(input_patterns)
    vocab_lib.load_vocabulary(vocab_file)  # fail here, not on a worker
    files = text_reader.expand_patterns(patterns, input_flag)
    if not output_dir:
        raise ValueError("--output_dir is empty.")
    output_dir = output_dir.rstrip("/")
    staging.remove_stale(output_dir)
    staging_dir = staging.new_staging_dir(output_dir)
    started = time.time()
    try:
        for sub in bucket_lib.SPLITS + (_SPILL_DIR, _PIECES_DIR, _STATS_DIR):
            FileSystems.mkdirs(FileSystems.join(staging_dir, sub))
        if pipeline is None:
            pipeline = beam.Pipeline(options=beam_options(beam_pipeline_args))
        progress = DataJobProgress(input_bytes(files))
        with project_on_worker_path(), _long_lived_objects_frozen(), \
                progress_lib.reporting(progress, progress_interval) as progress_id:
            with pipeline as p:
                info = build_pipeline(p, patterns, vocab_file, staging_dir, options,
                                      bucket_bytes, progress_id)
        if is_dry_run(pipeline):
            logging.getLogger(__name__).info("Dry run: the job was built and not submitted; nothing written.")
            delete_tree(staging_dir)
            return {"dry_run": True, **info}
        stats = finalize_output(staging_dir, output_dir, options, patterns, vocab_file, info,
                                time.time() - started, input_flag, manifest_extra, min_eval_instances)
    except BaseException:
        delete_tree(staging_dir)
        raise
    return stats


def run_prepare_data_to_files(input_patterns: List[str], vocab_file: str,
                              output_files: Sequence[str], options: PretrainingDataOptions,
                              beam_pipeline_args: Optional[List[str]] = None,
                              bucket_bytes: int = DEFAULT_BUCKET_BYTES,
                              progress_interval: float = progress_lib.DEFAULT_INTERVAL_SECONDS) -> dict:
    """The original `--output_file` semantics: all instances, no eval split, one file per name.

    Instances are spread over the files (the original writes round-robin). Each
    file is written under a temp name and renamed when the whole run succeeded.
    """
    output_files = [f.strip() for f in output_files if f.strip()]
    if not output_files:
        raise ValueError("--output_file is empty.")
    options = PretrainingDataOptions(**{**json.loads(options.to_json()), "eval_fraction": 0.0,
                                        "num_shards": len(output_files)}).validate()
    first = output_files[0]
    tmp_dir = FileSystems.join(FileSystems.split(first)[0] or ".",
                               f".{FileSystems.split(first)[1]}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        stats = run_prepare_data(input_patterns, vocab_file, tmp_dir, options,
                                 beam_pipeline_args, bucket_bytes, progress_interval=progress_interval)
        if stats.get("dry_run"):
            return stats
        for shard, target in enumerate(output_files):
            source = FileSystems.join(tmp_dir, shard_name(bucket_lib.TRAIN, shard, len(output_files)))
            if "://" not in target:
                os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
                os.replace(source, target)
            else:
                if FileSystems.exists(target):
                    FileSystems.delete([target])
                FileSystems.rename([source], [target])
    finally:
        delete_tree(tmp_dir)
    return stats


def is_dry_run(pipeline: beam.Pipeline) -> bool:
    """Whether the pipeline only builds its job (DataflowRunner --dry_run=True): it runs nothing."""
    from apache_beam.options.pipeline_options import TestOptions

    return bool(pipeline.options.view_as(TestOptions).dry_run)


def beam_options(beam_pipeline_args: Optional[List[str]]) -> PipelineOptions:
    """Pass-through Beam args; locally defaults to DirectRunner, multi_threading, 2 workers.

    Threads, not processes, by default: the heavy steps (tokenising, the C record
    builder, file writes) release the GIL, and one process imports TensorFlow and
    builds the tokenizer once, where each multi_processing worker pays ~10 s of
    start-up and Beam waits ~5 s for them at shutdown (benchmarks/bench_pretraining_data.py
    compares the two).
    Also makes the threaded workers flush their output by size only: their timed flush
    drops elements (components/beam_data_plane.py).
    """
    args = list(beam_pipeline_args or [])
    opts = PipelineOptions(args)
    std = opts.view_as(StandardOptions)
    if std.runner in (None, "DirectRunner", "direct"):
        beam_data_plane.disable_timed_flushes()
        direct = opts.view_as(DirectOptions)
        if not any(a.startswith("--direct_running_mode") for a in args):
            direct.direct_running_mode = "multi_threading"
        if not any(a.startswith("--direct_num_workers") for a in args):
            direct.direct_num_workers = 2
        if direct.direct_num_workers == 1 and not any(
                a.startswith("--direct_running_mode") for a in args):
            direct.direct_running_mode = "in_memory"
    return opts


def finalize_output(staging_dir, output_dir, options, patterns, vocab_file, info, seconds,
                    input_flag="--input_file", manifest_extra=None, min_eval_instances=1):
    """Checks the splits, fills empty shards, writes the manifest, then swaps staging_dir into
    output_dir."""
    text_reader.check_corpus_read(_read_reading_stats(FileSystems.join(staging_dir, _STATS_DIR)),
                                  patterns, input_flag)
    raw = _read_stats(FileSystems.join(staging_dir, _STATS_DIR))
    delete_tree(FileSystems.join(staging_dir, _STATS_DIR))
    delete_tree(FileSystems.join(staging_dir, _SPILL_DIR))
    delete_tree(FileSystems.join(staging_dir, _PIECES_DIR))  # empty after a successful run
    get = lambda split, key: int(raw.get(f"{split}_{key}", 0))  # noqa: E731
    stats = {
        "num_train_instances": get("train", "num_instances"),
        "num_eval_instances": get("eval", "num_instances"),
        "num_train_documents": get("train", "num_documents"),
        "num_eval_documents": get("eval", "num_documents"),
        "num_documents": get("train", "num_documents") + get("eval", "num_documents"),
        "num_sentences": get("train", "num_sentences") + get("eval", "num_sentences"),
        "num_tokens": get("train", "num_tokens") + get("eval", "num_tokens"),
        "num_masked": get("train", "num_masked") + get("eval", "num_masked"),
        "num_random_next": get("train", "num_random_next") + get("eval", "num_random_next"),
        "input_bytes": int(info["input_bytes"]),
        "num_files": int(info["num_files"]),
        "num_buckets": info["num_buckets"],
        "seconds": round(seconds, 3),
    }
    if stats["num_documents"] == 0:
        raise ValueError(f"No documents in {input_flag} {list(patterns)}: every line is made of "
                         "characters that tokenise to nothing (control characters?); give text.")
    if stats["num_train_instances"] == 0:
        raise ValueError(f"No training instances from {input_flag} {list(patterns)}: all "
                         f"{stats['num_documents']} document(s) went to eval; lower "
                         f"--eval_fraction (now {options.eval_fraction}).")
    check_eval_split(stats, options.eval_fraction, min_eval_instances, input_flag, list(patterns))
    for split in bucket_lib.SPLITS:
        for shard in range(options.num_shards):
            path = FileSystems.join(staging_dir, shard_name(split, shard, options.num_shards))
            if not FileSystems.exists(path):
                FileSystems.create(path).close()  # an empty TFRecord file is valid
    manifest = {"records_dir": output_dir,
                # No timing in the manifest: reruns give identical bytes.
                "stats": {k: v for k, v in stats.items() if k != "seconds"},
                "options": json.loads(options.to_json()),
                "input_file": list(patterns), "vocab_file": vocab_file,
                "train_pattern": FileSystems.join(output_dir, "train", "part-*.tfrecord"),
                "eval_pattern": FileSystems.join(output_dir, "eval", "part-*.tfrecord"),
                **(manifest_extra or {})}
    with FileSystems.create(FileSystems.join(staging_dir, MANIFEST_NAME)) as f:
        f.write(json.dumps(manifest, indent=2, sort_keys=True).encode())
    _swap_into_place(staging_dir, output_dir)
    return stats


def check_eval_split(stats: dict, eval_fraction: float, min_eval_instances: int, input_flag: str,
                     patterns: list) -> None:
    """Refuses an eval split with fewer than min_eval_instances instances (eval_fraction > 0).

    The split is made per document (each goes to eval with probability eval_fraction), so a
    corpus of few documents can leave eval empty; the Trainer would only find out after the
    data steps. The message gives the document counts and what would fix it.
    """
    if eval_fraction <= 0 or stats["num_eval_instances"] >= min_eval_instances:
        return
    documents, eval_documents = stats["num_documents"], stats["num_eval_documents"]
    train_documents = max(1, stats["num_train_documents"])
    per_document = max(stats["num_train_instances"] / train_documents, 1e-9)  # instances a document makes
    # Documents needed in eval for min_eval_instances, twice over for the luck of the hash split.
    eval_needed = 2 * math.ceil(min_eval_instances / per_document)
    fraction = min(0.5, eval_needed / max(1, documents))
    what = ("no instance" if stats["num_eval_instances"] == 0
            else f"{stats['num_eval_instances']} instance(s), under the {min_eval_instances} asked for")
    raise ValueError(
        f"The eval split of {input_flag} {patterns} would have {what}: {eval_documents} of {documents} "
        f"document(s) went to eval (--eval_fraction {eval_fraction} sends each document there with that "
        f"probability; a document makes ~{per_document:.1f} instances). Give more documents (about "
        f"{math.ceil(eval_needed / eval_fraction)} at this fraction) or a larger --eval_fraction (about "
        f"{fraction:.2g} for {documents} documents).")


def _swap_into_place(staging_dir: str, output_dir: str) -> None:
    """Local: output_dir -> .old, staging -> output_dir (two renames), delete .old.

    Object stores have no directories and no directory rename (Beam's GCS filesystem:
    `exists("dir/")` is False, `delete(["dir/"])` removes one level). There the staged
    objects are renamed one by one, the manifest last, over the old output; then the old
    objects the new output did not replace (shards of another --num_shards) are deleted.
    Readers may see old and new shards together for the duration of the copies.
    """
    if "://" not in output_dir:
        old = None
        if os.path.exists(output_dir):
            old = f"{output_dir}.old-{uuid.uuid4().hex[:12]}"
            os.rename(output_dir, old)
        os.rename(staging_dir, output_dir)
        if old:
            shutil.rmtree(old, ignore_errors=True)
        return
    previous = set(_objects_under(output_dir))
    sources = sorted(_objects_under(staging_dir), key=lambda path: path.endswith("/" + MANIFEST_NAME))
    targets = [output_dir + s[len(staging_dir):] for s in sources]
    FileSystems.rename(sources, targets)
    stale = sorted(previous - set(targets))
    if stale:
        FileSystems.delete(stale)


def _objects_under(path: str) -> List[str]:
    """Every object whose name starts with `path`/ (all levels), on any Beam filesystem."""
    return [m.path for m in FileSystems.match([path.rstrip("/") + "/**"])[0].metadata_list]


def delete_tree(path: str) -> None:
    """Deletes a directory and everything under it. On an object store that means listing
    the objects under the prefix and deleting each by name (a "dir/" is no object there)."""
    try:
        if "://" not in path:
            shutil.rmtree(path, ignore_errors=True)
        else:
            objects = _objects_under(path)
            if objects:
                FileSystems.delete(objects)
    except Exception:  # cleanup must not hide the original error
        logging.exception("Could not delete staging directory %s", path)


@contextlib.contextmanager
def _long_lived_objects_frozen():
    """Keeps the objects that exist before the job out of garbage collection while it runs.

    With TensorFlow and Beam imported, one full collection walks millions of
    long-lived objects (~0.45 s, measured) with the GIL held, stalling every
    worker thread; the job's own objects are short-lived. gc.freeze() moves the
    existing objects to the permanent generation; unfreeze() gives them back to
    the collector afterwards. A process that froze objects itself is left alone.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class project_on_worker_path:
    """Puts the project root on PYTHONPATH for local worker subprocesses.

    DirectRunner's multi_processing workers are fresh interpreters that unpickle
    our DoFns by module name; when the project is not pip-installed they would
    not find `components`. (Dataflow workers get it from --setup_file.)
    """

    def __enter__(self):
        self._old = os.environ.get("PYTHONPATH")
        parts = [p for p in (self._old or "").split(os.pathsep) if p]
        if _PROJECT_ROOT not in parts:
            os.environ["PYTHONPATH"] = os.pathsep.join([_PROJECT_ROOT] + parts)
        if _PROJECT_ROOT not in sys.path:
            sys.path.insert(0, _PROJECT_ROOT)
        return self

    def __exit__(self, *exc):
        if self._old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = self._old
        return False
