#!/usr/bin/env python3
"""Throughput of `bertpipe prepare-data` on a real corpus (not a test).

    .venv/bin/python benchmarks/bench_pretraining_data.py [--sizes 20,60,120] [--workers 1,2]
        [--modes multi_threading,warm,multi_processing] [--repeats 3] [--corpus PATH]

Prints, for each corpus size, mode and worker count, the median of --repeats runs,
each in a fresh process: wall time of the whole job (Beam start-up, the
TensorFlow import, reading, writing, the final rename), MB of raw text per
second per core (= per worker), instances per second, CPU time, and peak RSS.
The worker counts run interleaved, round by round, and the scaling figure is
the median of the per-round ratios (wall time with 1 worker / with N). The "warm"
mode imports TensorFlow and builds the tokenizer before the clock starts: the
steady state of a long-lived worker, i.e. what the per-core figure converges to
on a corpus large enough to hide that ~5 s. Cold runs report that start-up (from
the job's "Tokenizer ready" log record) and the bound it puts on their scaling.
Also prints the hot path alone (tokenise + instances + masks + records of 1 MB
buckets, one core, no Beam), and this machine's scaling ceiling for that work:
the hot path with writing in N separate processes started together against 1
(nothing shared, so the ratio is what the cores, caches and memory allow); the
job's scaling is also given as a share of it.

Defaults: max_seq_length 128, dupe_factor 10, the rest as google-research/bert.
The corpora (one per size) come from benchmarks/corpus.py, the vocabulary
(30522 tokens) is learnt once from the first; both are cached in benchmarks/out/.
"""
import argparse
import json
import logging
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OUT = os.path.join(ROOT, "benchmarks", "out")


def _corpus(min_mb):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import corpus  # benchmarks/corpus.py

    path = os.path.join(OUT, f"corpus_{min_mb:g}mb.txt")
    if not os.path.exists(path) or os.path.getsize(path) < min_mb * 2**20:
        corpus.build_benchmark_corpus(path, int(min_mb * 2**20))
    return path


def _vocab(corpus_path, path, size):
    from components.pretraining_data import vocab

    if path:
        return path
    path = os.path.join(OUT, f"vocab_{size}.txt")
    if not os.path.exists(path):
        t = time.time()
        n = vocab.learn_vocabulary([corpus_path], path, size, True, sample_lines=60_000)
        print(f"learnt vocabulary: {n} tokens in {time.time() - t:.0f} s -> {path}")
    return path


def _one_run(args):
    """Child process: one configuration; prints a JSON line."""
    from components.pretraining_data import beam_job
    from components.pretraining_data.options import PretrainingDataOptions

    options = PretrainingDataOptions(max_seq_length=128, dupe_factor=args.dupe_factor,
                                     num_shards=args.num_shards)
    beam_args = [f"--direct_num_workers={args.one}", f"--direct_running_mode={args.mode}"]
    if args.warm:  # import TensorFlow and build the tokenizer before the clock starts
        beam_job._tokenizer_for(args.vocab, options.do_lower_case)
    start_up = _StartUpRecorder()  # a cold run's TensorFlow import + tokenizer build
    job_log = logging.getLogger(beam_job.__name__)
    job_log.setLevel(logging.INFO)
    job_log.addHandler(start_up)
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        t, cpu = time.time(), _cpu_seconds()
        stats = beam_job.run_prepare_data([args.corpus], args.vocab, os.path.join(tmp, "records"),
                                          options, beam_args)
        wall, cpu = time.time() - t, _cpu_seconds() - cpu
        out_bytes = sum(os.path.getsize(os.path.join(d, f))
                        for d, _, fs in os.walk(os.path.join(tmp, "records")) for f in fs)
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"workers": args.one, "mode": args.mode, "wall": wall, "cpu": cpu,
                      "start_up": start_up.seconds, "stats": stats,
                      "out_bytes": out_bytes, "rss_driver_mb": rss_self,
                      "rss_worker_max_mb": rss_children}))


class _StartUpRecorder(logging.Handler):
    """Keeps the seconds the job's tokenizer build took (TensorFlow import included),
    from the job's "Tokenizer ready" log record; None if it was built before."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.seconds = None

    def emit(self, record):
        self.seconds = getattr(record, "tokenizer_build_seconds", self.seconds)


def _start_up_bound(one, many, workers):
    """Amdahl's bound on a cold round's speed-up with N workers: the N-worker run's own
    start-up (serial), then the 1-worker run's remaining work split perfectly. None
    when a run failed or had no start-up to report (warm)."""
    if one is None or many is None or one["start_up"] is None or many["start_up"] is None:
        return None
    rest = max(0.0, one["wall"] - one["start_up"])
    return one["wall"] / (many["start_up"] + rest / workers)


def _cpu_seconds():
    """User + system CPU time of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _hot_inputs(corpus_path, vocab_path, mb):
    """The tokenizer (graph traced), vocabulary info, and ~mb MB of the corpus's
    documents in ~1 MB buckets, each one spill block (hash16 | uint32 length | text,
    as the job's buckets arrive), and their raw size in bytes."""
    from components.pretraining_data import beam_job, bucket, text_reader, tokenization, vocab

    tokens = vocab.load_vocabulary(vocab_path)
    tok = tokenization.BertTokenizer(tokens, True)
    tok.tokenize_text(b"warm up")  # traces the tokenizer's graph before the clock starts
    docs, size = [], 0
    for r in text_reader.split_ranges(text_reader.expand_patterns([corpus_path]), 64 << 20):
        for d in text_reader.read_documents(r):
            docs.append((bucket.document_hash(d, 0), b"\n".join(d)))
            size += sum(len(x) + 1 for x in d)
            if size >= mb * 2**20:
                break
        if size >= mb * 2**20:
            break
    groups, cur, cur_size = [], [], 0
    for h, d in docs:
        cur.append((h, d))
        cur_size += len(d) + 1
        if cur_size >= 1 << 20:
            groups.append(beam_job.encode_documents(cur))
            cur, cur_size = [], 0
    if cur:
        groups.append(beam_job.encode_documents(cur))
    return tok, bucket.VocabInfo(tokens), groups, size


def _hot_run(tok, info, groups, dupe_factor, write):
    """Tokenise + instances + masks + records of every bucket, records to write(bytes).
    Returns the number of instances."""
    from components.pretraining_data import bucket
    from components.pretraining_data.options import PretrainingDataOptions

    options = PretrainingDataOptions(dupe_factor=dupe_factor)
    n = 0
    for i, block in enumerate(groups):
        pieces, stats = bucket.process_spill_blocks("train", i, [block], tok, options,
                                                    num_pieces=4)
        for piece in pieces:
            if piece is not None:
                bucket.write_records(piece, info, options, write)
        n += stats.num_instances
    return n


def _hot_path(corpus_path, vocab_path, dupe_factor, mb=4):
    """Tokenise + instances + masks + encode of ~mb MB in this process (one core)."""
    tok, info, groups, size = _hot_inputs(corpus_path, vocab_path, mb)
    t = time.time()
    n = _hot_run(tok, info, groups, dupe_factor, lambda data: None)
    dt = time.time() - t
    return size / 2**20 / dt, n / dt


def _ceiling_child(corpus_path, vocab_path, dupe_factor, mb, barrier, results):
    """One process of _ceiling: the hot path on ~mb MB, records written to a temp file,
    timed from a start shared by all processes."""
    tok, info, groups, _ = _hot_inputs(corpus_path, vocab_path, mb)
    with tempfile.TemporaryFile(dir=OUT) as f:
        barrier.wait()
        _hot_run(tok, info, groups, dupe_factor, f.write)
        f.flush()
    results.put(time.time())


def _ceiling(corpus_path, vocab_path, dupe_factor, workers, repeats, mb=16):
    """This machine's scaling ceiling for this work: the hot path with writing, in 1
    and in `workers` separate processes started together (no Beam, no GIL or memory
    shared), each process doing the same ~mb MB. Returns the per-round ratios of
    throughput (workers * wall with 1 / wall with `workers`), rounds interleaved."""
    ctx = multiprocessing.get_context("spawn")
    ratios = []
    for _ in range(repeats):
        walls = {}
        for n in (1, workers):
            barrier, results = ctx.Barrier(n + 1), ctx.Queue()
            procs = [ctx.Process(target=_ceiling_child, args=(corpus_path, vocab_path,
                                                             dupe_factor, mb, barrier, results))
                     for _ in range(n)]
            for p in procs:
                p.start()
            barrier.wait()
            start = time.time()
            walls[n] = max(results.get() for _ in procs) - start
            for p in procs:
                p.join()
        ratios.append(workers * walls[1] / walls[workers])
    return sorted(ratios)


def _run_child(args, corpus_path, workers, mode):
    warm = ["--warm"] if mode == "warm" else []
    mode = "multi_threading" if mode == "warm" else mode
    cmd = [sys.executable, os.path.abspath(__file__), "--one", str(workers), "--mode", mode, *warm,
           "--corpus", corpus_path, "--vocab", args.vocab, "--dupe_factor",
           str(args.dupe_factor), "--num_shards", str(args.num_shards)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode or not lines:
        print(f"  {mode}, {workers} worker(s): FAILED\n{proc.stderr[-3000:]}")
        return None
    return json.loads(lines[-1])


def _print_median(mode, workers, mb, runs):
    r = runs[len(runs) // 2]  # the median run by wall time
    st = r["stats"]
    inst = st["num_train_instances"] + st["num_eval_instances"]
    # multi_processing: the driver plus worker processes; otherwise one process
    # (its forked helpers' RSS is the parent's, so it is not reported).
    rss = (f"peak RSS driver {r['rss_driver_mb']:.0f} MB, largest worker process "
           f"{r['rss_worker_max_mb']:.0f} MB" if mode == "multi_processing" else
           f"peak RSS {r['rss_driver_mb']:.0f} MB (one process)")
    walls = ", ".join(f"{x['wall']:.1f}" for x in runs)
    start_up = (f", of which {r['start_up']:.1f} s TensorFlow import + tokenizer build"
                if r.get("start_up") is not None else "")
    print(f"  {mode}, {workers} worker(s): {r['wall']:.1f} s wall (median of {len(runs)}: "
          f"{walls}{start_up}), {mb / r['wall'] / workers:.2f} MB/s/core "
          f"({mb / r['wall']:.2f} MB/s total), {inst / r['wall']:,.0f} instances/s "
          f"({inst:,} instances, {r['out_bytes'] / 2**20:.0f} MB of records), CPU {r['cpu']:.1f} s "
          f"({r['cpu'] / r['wall']:.2f} cores busy), {rss}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", help="one corpus file instead of --sizes")
    parser.add_argument("--sizes", default="20,60,120",
                        help="corpus sizes in MB (built once; the machine's distinct text may "
                             "run out, then benchmarks/corpus.py repeats it and says so)")
    parser.add_argument("--vocab", help="vocab.txt (default: learn 30522 tokens from the corpus)")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--modes", default="multi_threading,warm",
                        help="DirectRunner running modes to compare: multi_threading, "
                             "multi_processing, and warm (multi_threading with TensorFlow "
                             "imported and the tokenizer built before the clock starts: the "
                             "steady state of a long-lived worker)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration")
    parser.add_argument("--ceiling_rounds", type=int, default=5,
                        help="rounds of the machine-ceiling measurement (0: skip it)")
    parser.add_argument("--dupe_factor", type=int, default=10)
    parser.add_argument("--num_shards", type=int, default=4)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="multi_threading", help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.makedirs(OUT, exist_ok=True)
    if args.one:
        _one_run(args)
        return 0
    if args.corpus and not os.path.exists(args.corpus):
        raise SystemExit(f"--corpus {args.corpus} does not exist.")
    corpora = [args.corpus] if args.corpus else [_corpus(float(x)) for x in args.sizes.split(",")]
    args.vocab = _vocab(corpora[0], args.vocab, 30522)
    print(f"vocab {args.vocab}; max_seq_length 128, dupe_factor {args.dupe_factor}, "
          f"{args.num_shards} shards; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    mbps, ips = _hot_path(corpora[0], args.vocab, args.dupe_factor)
    print(f"hot path, 1 core, no Beam: {mbps:.2f} MB/s of raw text, {ips:,.0f} instances/s")
    scaled = max(int(x) for x in args.workers.split(","))
    ceiling = None
    if scaled > 1 and args.ceiling_rounds:
        ratios = _ceiling(corpora[0], args.vocab, args.dupe_factor, scaled, args.ceiling_rounds)
        ceiling = ratios[len(ratios) // 2]
        print(f"machine ceiling: the hot path plus writing in {scaled} separate processes "
              f"started together (no Beam, nothing shared) = {ceiling:.2f}x the throughput of "
              f"1 (median of {len(ratios)} interleaved rounds: "
              f"{', '.join(f'{x:.2f}' for x in ratios)})")
    for corpus_path in corpora:
        mb = os.path.getsize(corpus_path) / 2**20
        print(f"\ncorpus {corpus_path}: {mb:.1f} MB")
        for mode in args.modes.split(","):
            workers = [int(x) for x in args.workers.split(",")]
            # Rounds, each running every worker count once: this VM's speed drifts by
            # up to ~30% over minutes, and interleaving exposes all counts to the same
            # drift, so the per-round ratios compare like with like.
            rounds = [{w: _run_child(args, corpus_path, w, mode) for w in workers}
                      for _ in range(args.repeats)]
            for w in workers:
                runs = sorted((r[w] for r in rounds if r[w] is not None), key=lambda r: r["wall"])
                if runs:
                    _print_median(mode, w, mb, runs)
            if 1 in workers and len(workers) > 1:
                w = max(workers)
                ratios = sorted(r[1]["wall"] / r[w]["wall"] for r in rounds
                                if r[1] is not None and r[w] is not None)
                if ratios:
                    listed = ", ".join(f"{x:.2f}" for x in ratios)
                    median = ratios[len(ratios) // 2]
                    of_ceiling = (f", {median / ceiling:.0%} of the machine ceiling"
                                  if ceiling else "")
                    print(f"  {mode}: {w} workers / 1 worker = {median:.2f}x "
                          f"(median of {len(ratios)} interleaved rounds: {listed}; "
                          f"parallel efficiency {median / w:.0%}{of_ceiling})")
                    bounds = sorted(b for b in (_start_up_bound(r[1], r[w], w) for r in rounds)
                                    if b is not None)
                    if bounds:
                        print(f"    Amdahl bound from the start-up: at most "
                              f"{bounds[len(bounds) // 2]:.2f}x with {w} workers, if all but "
                              "the start-up scaled perfectly (it runs on one core, and no "
                              "bucket can be tokenised before it ends)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
