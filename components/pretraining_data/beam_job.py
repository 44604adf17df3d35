"""The Apache Beam job: corpus text -> sharded BERT pretraining TFRecords (train/ and eval/).

    ranges of the input files                        (driver: list files, cut ranges)
      -> documents, each hashed to (split, bucket)   (parallel over ranges)
      -> GroupByKey(split, bucket)                   (~1 MB of text per bucket)
      -> tokenise + instances + masks + encode       (parallel over buckets; bucket.py)
      -> GroupByKey(split, shard)
      -> sort by random key, write part-0000k-of-0000N.tfrecord   (parallel over shards)

Why this shape: instances need a pool of other documents for "random next
sentence", so documents are grouped into buckets (see bucket.py); records are
written by our own shard writer, sorted by a seeded random key, because Beam's
WriteToTFRecord writes in whatever order the runner delivers, and the same
inputs + seed + num_shards must give byte-identical files.

Everything is written under a staging directory next to the output
(`<output_dir>.staging-<id>`) and renamed into place only after the pipeline
succeeded, so a failed run leaves nothing where ExampleGen would read it.
"""
import json
import logging
import math
import os
import shutil
import sys
import time
import uuid
from typing import Any, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from components.pretraining_data import bucket as bucket_lib
from components.pretraining_data import text_reader, tfrecord
from components.pretraining_data import vocab as vocab_lib
from components.pretraining_data.options import PretrainingDataOptions

# ~1 MB of text per bucket: a few hundred to a few thousand documents to draw
# random next sentences from, one tokeniser call, ~30k instances at dupe_factor 10.
DEFAULT_BUCKET_BYTES = 1 << 20
MANIFEST_NAME = "manifest.json"
_STATS_NAME = "_stats.json"
_PIECES_DIR = "_pieces"  # per (bucket, shard) record files, merged by the shard writers
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shard_name(split: str, shard: int, num_shards: int) -> str:
    return f"{split}/part-{shard:05d}-of-{num_shards:05d}.tfrecord"


def num_buckets_for(total_bytes: int, eval_fraction: float, bucket_bytes: int) -> Dict[str, int]:
    """Buckets per split, from the input size (known before reading, so no extra pass)."""
    total = max(1, math.ceil(total_bytes / bucket_bytes))
    eval_buckets = max(1, round(total * eval_fraction))
    return {bucket_lib.TRAIN: max(1, total - eval_buckets) if eval_fraction else total,
            bucket_lib.EVAL: eval_buckets}


class _ReadDocuments(beam.DoFn):
    """FileRange -> ((split, bucket), (document_hash, lines))."""

    def __init__(self, options: PretrainingDataOptions, num_buckets: Dict[str, int]):
        self._options = options
        self._num_buckets = num_buckets

    def process(self, file_range):
        seed, frac = self._options.random_seed, self._options.eval_fraction
        for lines in text_reader.read_documents(file_range):
            h = bucket_lib.document_hash(lines, seed)
            yield bucket_lib.assign(h, frac, self._num_buckets), (h, lines)


class _MakeInstances(beam.DoFn):
    """((split, bucket), documents) -> ((split, shard), piece path); stats on a side output.

    The serialised records (~14x the text at dupe_factor 10) go to piece files
    under the staging dir, and only their paths go through the shuffle: pushing
    the records themselves through the runner made the local multi-worker run
    slower than one worker and its driver hold them all in memory.
    """

    STATS = "stats"

    def __init__(self, vocab_file: str, options: PretrainingDataOptions, staging_dir: str):
        self._vocab_file = vocab_file
        self._options = options
        self._staging_dir = staging_dir

    def setup(self):
        from components.pretraining_data import tokenization  # imports TensorFlow

        tokens = vocab_lib.load_vocabulary(self._vocab_file)
        self._vocab = bucket_lib.VocabInfo(tokens)
        self._tokenizer = tokenization.BertTokenizer(tokens, self._options.do_lower_case)

    def process(self, element):
        (split, bucket_index), documents = element
        pieces, stats = bucket_lib.process_bucket(
            split, bucket_index, documents, self._tokenizer, self._vocab, self._options)
        for shard, piece in pieces.items():
            path = FileSystems.join(self._staging_dir, _PIECES_DIR,
                                    f"{split}-{shard:05d}-{bucket_index:07d}.piece")
            _write_piece(path, piece)
            yield (split, shard), path
        yield beam.pvalue.TaggedOutput(self.STATS, (split, stats.__dict__))


def _write_piece(path: str, piece) -> None:
    n = len(piece.uids)
    with FileSystems.create(path) as f:
        f.write(np.array([n], "<i8").tobytes())
        f.write(piece.sort_keys.astype("<u8").tobytes())
        f.write(piece.uids.astype("<i8").tobytes())
        f.write(piece.offsets.astype("<i8").tobytes())
        f.write(piece.blob)


def _read_piece(path: str):
    with FileSystems.open(path) as f:
        data = f.read()
    n = int(np.frombuffer(data, "<i8", 1)[0])
    arrays = np.frombuffer(data, "<i8", 3 * n + 1, offset=8)
    keys = arrays[:n].view("<u8")
    # Offsets into `data` itself: slicing the records out of it would copy them all.
    return bucket_lib.ShardPiece(keys, arrays[n:2 * n], arrays[2 * n:] + 8 * (3 * n + 2), data)


class _WriteShard(beam.DoFn):
    """((split, shard), piece paths) -> writes the shard file under the staging dir.

    Records are written in (key, uid) order, framed in chunks (tfrecord.frame)
    and written with plain file writes.
    """

    _CHUNK_RECORDS = 8192

    def __init__(self, staging_dir: str, num_shards: int):
        self._staging_dir = staging_dir
        self._num_shards = num_shards

    def process(self, element):
        (split, shard), paths = element
        paths = sorted(paths)
        pieces = [_read_piece(p) for p in paths]
        keys = np.concatenate([p.sort_keys for p in pieces])
        uids = np.concatenate([p.uids for p in pieces])
        piece_of = np.concatenate([np.full(len(p.uids), i) for i, p in enumerate(pieces)])
        starts = np.concatenate([p.offsets[:-1] for p in pieces])
        ends = np.concatenate([p.offsets[1:] for p in pieces])
        order = np.lexsort((uids, keys))  # by key, then uid: independent of arrival order
        blobs = [p.blob for p in pieces]
        path = FileSystems.join(self._staging_dir, shard_name(split, shard, self._num_shards))
        with FileSystems.create(path) as f:
            for c in range(0, len(order), self._CHUNK_RECORDS):
                idx = order[c:c + self._CHUNK_RECORDS]
                f.write(tfrecord.frame([blobs[p][s:e] for p, s, e in zip(
                    piece_of[idx].tolist(), starts[idx].tolist(), ends[idx].tolist())]))
        del blobs, pieces
        FileSystems.delete(paths)
        yield split, len(order)


def _sum_stats(items):
    total = {}
    for split, stats in items:
        for k, v in stats.items():
            total[f"{split}_{k}"] = total.get(f"{split}_{k}", 0) + v
    return total


def build_pipeline(pipeline: beam.Pipeline, input_patterns: Sequence[str], vocab_file: str,
                   staging_dir: str, options: PretrainingDataOptions,
                   bucket_bytes: int = DEFAULT_BUCKET_BYTES):
    """Adds the job to an existing pipeline; writes shards + _stats.json under staging_dir.

    The caller creates staging_dir/train and staging_dir/eval first, and after the
    run calls finalize_output (empty shards, manifest, atomic rename).
    """
    files = text_reader.expand_patterns(input_patterns)
    total_bytes = sum(f.size_bytes * (3 if text_reader.is_gzip(f.path) else 1) for f in files)
    num_buckets = num_buckets_for(total_bytes, options.eval_fraction, bucket_bytes)
    # Ranges only set read parallelism; the documents read do not depend on them.
    range_bytes = int(min(64 << 20, max(1 << 20, total_bytes // 64)))
    ranges = text_reader.split_ranges(files, range_bytes)

    made = (
        pipeline
        | "FileRanges" >> beam.Create(ranges, reshuffle=False)
        | "SpreadRanges" >> beam.Reshuffle()
        | "ReadDocuments" >> beam.ParDo(_ReadDocuments(options, num_buckets))
        | "GroupIntoBuckets" >> beam.GroupByKey()
        | "MakeInstances" >> beam.ParDo(_MakeInstances(vocab_file, options, staging_dir))
        .with_output_types(Tuple[Tuple[str, int], Any]).with_outputs(
            _MakeInstances.STATS, main="pieces"))
    _ = (
        made.pieces
        | "GroupIntoShards" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(_WriteShard(staging_dir, options.num_shards)))
    _ = (
        made[_MakeInstances.STATS]
        | "SumStats" >> beam.combiners.ToList()
        | "WriteStats" >> beam.Map(_write_json, FileSystems.join(staging_dir, _STATS_NAME),
                                   _sum_stats))
    return {"num_buckets": num_buckets, "num_files": len(files), "input_bytes": total_bytes}


def _write_json(items, path, reduce_fn):
    with FileSystems.create(path) as f:
        f.write(json.dumps(reduce_fn(items), sort_keys=True).encode())


def run_prepare_data(input_patterns: List[str], vocab_file: str, output_dir: str,
                     options: PretrainingDataOptions,
                     beam_pipeline_args: Optional[List[str]] = None,
                     bucket_bytes: int = DEFAULT_BUCKET_BYTES,
                     pipeline: Optional[beam.Pipeline] = None) -> dict:
    """Runs the job and puts output_dir/{train,eval}/part-*.tfrecord in place atomically.

    Args:
      input_patterns: files/globs (each may be comma-separated), corpus format.
      vocab_file: vocab.txt; checked before anything runs.
      output_dir: replaced as a whole if it exists (local: one rename).
      options: validated here.
      beam_pipeline_args: e.g. ["--runner=DataflowRunner", "--setup_file=./setup.py", ...];
        default: DirectRunner, multi_processing, 2 workers.
      pipeline: an existing, not yet run pipeline (e.g. a TFX Beam component's) to
        build the job on instead; beam_pipeline_args are then ignored. It is run here.
    Returns:
      stats: num_train_instances, num_eval_instances, num_documents, num_train_documents,
      num_eval_documents, num_tokens, num_masked, input_bytes, seconds, ...
    Raises:
      ValueError: bad option, unreadable vocabulary, no input, or no instances made.
    """
    options.validate()
    patterns = text_reader.split_patterns(input_patterns)
    vocab_lib.load_vocabulary(vocab_file)  # fail here, not on a worker
    text_reader.expand_patterns(patterns)
    if not output_dir:
        raise ValueError("--output_dir is empty.")
    output_dir = output_dir.rstrip("/")
    staging_dir = f"{output_dir}.staging-{uuid.uuid4().hex[:12]}"
    started = time.time()
    try:
        for sub in bucket_lib.SPLITS + (_PIECES_DIR,):
            FileSystems.mkdirs(FileSystems.join(staging_dir, sub))
        if pipeline is None:
            pipeline = beam.Pipeline(options=beam_options(beam_pipeline_args))
        with _project_on_worker_path():
            with pipeline as p:
                info = build_pipeline(p, patterns, vocab_file, staging_dir, options,
                                      bucket_bytes)
        stats = finalize_output(staging_dir, output_dir, options, patterns, vocab_file, info,
                                time.time() - started)
    except BaseException:
        _delete_tree(staging_dir)
        raise
    return stats


def run_prepare_data_to_files(input_patterns: List[str], vocab_file: str,
                              output_files: Sequence[str], options: PretrainingDataOptions,
                              beam_pipeline_args: Optional[List[str]] = None,
                              bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> dict:
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
                                 beam_pipeline_args, bucket_bytes)
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
        _delete_tree(tmp_dir)
    return stats


def beam_options(beam_pipeline_args: Optional[List[str]]) -> PipelineOptions:
    """Pass-through Beam args; locally defaults to DirectRunner, multi_processing, 2 workers."""
    args = list(beam_pipeline_args or [])
    opts = PipelineOptions(args)
    std = opts.view_as(StandardOptions)
    if std.runner in (None, "DirectRunner", "direct"):
        direct = opts.view_as(DirectOptions)
        if not any(a.startswith("--direct_running_mode") for a in args):
            direct.direct_running_mode = "multi_processing"
        if not any(a.startswith("--direct_num_workers") for a in args):
            direct.direct_num_workers = 2
        if direct.direct_num_workers == 1 and not any(
                a.startswith("--direct_running_mode") for a in args):
            direct.direct_running_mode = "in_memory"
    return opts


def finalize_output(staging_dir, output_dir, options, patterns, vocab_file, info, seconds):
    """Fills empty shards, writes the manifest, then swaps staging_dir into output_dir."""
    with FileSystems.open(FileSystems.join(staging_dir, _STATS_NAME)) as f:
        raw = json.loads(f.read().decode())
    FileSystems.delete([FileSystems.join(staging_dir, _STATS_NAME)])
    _delete_tree(FileSystems.join(staging_dir, _PIECES_DIR))  # empty after a successful run
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
        raise ValueError(f"No documents in --input_file {list(patterns)}: the files are empty "
                         "or only blank lines / characters that tokenise to nothing.")
    if stats["num_train_instances"] == 0:
        raise ValueError(f"No training instances from --input_file {list(patterns)}: all "
                         f"{stats['num_documents']} document(s) went to eval; lower "
                         f"--eval_fraction (now {options.eval_fraction}).")
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
                "eval_pattern": FileSystems.join(output_dir, "eval", "part-*.tfrecord")}
    with FileSystems.create(FileSystems.join(staging_dir, MANIFEST_NAME)) as f:
        f.write(json.dumps(manifest, indent=2, sort_keys=True).encode())
    _swap_into_place(staging_dir, output_dir)
    return stats


def _swap_into_place(staging_dir: str, output_dir: str) -> None:
    """Local: output_dir -> .old, staging -> output_dir (two renames), delete .old.

    Object stores have no directory rename; there the files are renamed one by
    one after the old output is deleted (readers may see a partial directory
    for the duration of the copies).
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
    if FileSystems.exists(output_dir + "/"):
        FileSystems.delete([output_dir + "/"])
    sources = [m.path for m in FileSystems.match([staging_dir + "/**"])[0].metadata_list]
    FileSystems.rename(sources, [output_dir + s[len(staging_dir):] for s in sources])
    _delete_tree(staging_dir)


def _delete_tree(path: str) -> None:
    try:
        if "://" not in path:
            shutil.rmtree(path, ignore_errors=True)
        elif FileSystems.exists(path + "/"):
            FileSystems.delete([path + "/"])
    except Exception:  # cleanup must not hide the original error
        logging.exception("Could not delete staging directory %s", path)


class _project_on_worker_path:
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
