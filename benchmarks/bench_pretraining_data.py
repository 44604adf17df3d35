#!/usr/bin/env python3
"""Throughput of `bertpipe prepare-data` on a real corpus (not a test).

    .venv/bin/python benchmarks/bench_pretraining_data.py [--corpus PATH] [--workers 1,2]

Prints, for each worker count: wall time, MB of raw text per second per core,
instances per second, and peak RSS (driver and workers). Also prints the hot
path alone (tokenise + instances + masks + encode of one bucket in this
process, no Beam), which is what the per-core figure converges to on a corpus
large enough to hide the workers' start-up (each imports TensorFlow).

Defaults: max_seq_length 128, dupe_factor 10, the rest as google-research/bert.
The corpus (>= 20 MB) comes from benchmarks/corpus.py; the vocabulary is learnt
from it once (30522 tokens) and cached in benchmarks/out/.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OUT = os.path.join(ROOT, "benchmarks", "out")


def _corpus(path, min_mb):
    if path:
        if not os.path.exists(path):
            raise SystemExit(f"--corpus {path} does not exist.")
        return path
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import corpus  # benchmarks/corpus.py

    path = os.path.join(OUT, "corpus.txt")
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
        n = vocab.learn_vocabulary([corpus_path], path, size, True, max_lines=60_000)
        print(f"learnt vocabulary: {n} tokens in {time.time() - t:.0f} s -> {path}")
    return path


def _one_run(args):
    """Child process: one configuration; prints a JSON line."""
    from components.pretraining_data import beam_job
    from components.pretraining_data.options import PretrainingDataOptions

    options = PretrainingDataOptions(max_seq_length=128, dupe_factor=args.dupe_factor,
                                     num_shards=args.num_shards)
    beam_args = [f"--direct_num_workers={args.one}"]
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        t = time.time()
        stats = beam_job.run_prepare_data([args.corpus], args.vocab, os.path.join(tmp, "records"),
                                          options, beam_args)
        wall = time.time() - t
        out_bytes = sum(os.path.getsize(os.path.join(d, f))
                        for d, _, fs in os.walk(os.path.join(tmp, "records")) for f in fs)
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"workers": args.one, "wall": wall, "stats": stats, "out_bytes": out_bytes,
                      "rss_driver_mb": rss_self, "rss_worker_max_mb": rss_children}))


def _hot_path(corpus_path, vocab_path, dupe_factor, mb=4):
    """Tokenise + instances + masks + encode of ~mb MB in this process (one core)."""
    from components.pretraining_data import bucket, text_reader, tokenization, vocab
    from components.pretraining_data.options import PretrainingDataOptions

    tokens = vocab.load_vocabulary(vocab_path)
    tok = tokenization.BertTokenizer(tokens, True)
    info = bucket.VocabInfo(tokens)
    docs, size = [], 0
    for r in text_reader.split_ranges(text_reader.expand_patterns([corpus_path]), 64 << 20):
        for d in text_reader.read_documents(r):
            docs.append((bucket.document_hash(d, 0), d))
            size += sum(len(x) + 1 for x in d)
            if size >= mb * 2**20:
                break
        if size >= mb * 2**20:
            break
    options = PretrainingDataOptions(dupe_factor=dupe_factor)
    per_bucket = 1 << 20
    groups, cur, cur_size = [], [], 0
    for h, d in docs:
        cur.append((h, d))
        cur_size += sum(len(x) + 1 for x in d)
        if cur_size >= per_bucket:
            groups.append(cur)
            cur, cur_size = [], 0
    if cur:
        groups.append(cur)
    t = time.time()
    n = 0
    for i, g in enumerate(groups):
        _, stats = bucket.process_bucket("train", i, g, tok, info, options)
        n += stats.num_instances
    dt = time.time() - t
    return size / 2**20 / dt, n / dt


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", help="corpus file (default: build >= --min_mb with "
                                         "benchmarks/corpus.py)")
    parser.add_argument("--min_mb", type=float, default=20)
    parser.add_argument("--vocab", help="vocab.txt (default: learn 30522 tokens from the corpus)")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--dupe_factor", type=int, default=10)
    parser.add_argument("--num_shards", type=int, default=4)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.makedirs(OUT, exist_ok=True)
    if args.one:
        _one_run(args)
        return 0
    args.corpus = _corpus(args.corpus, args.min_mb)
    args.vocab = _vocab(args.corpus, args.vocab, 30522)
    mb = os.path.getsize(args.corpus) / 2**20
    print(f"corpus {args.corpus}: {mb:.1f} MB; vocab {args.vocab}; max_seq_length 128, "
          f"dupe_factor {args.dupe_factor}, {args.num_shards} shards; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    mbps, ips = _hot_path(args.corpus, args.vocab, args.dupe_factor)
    print(f"hot path, 1 core, no Beam: {mbps:.2f} MB/s of raw text, {ips:,.0f} instances/s")
    for w in [int(x) for x in args.workers.split(",")]:
        cmd = [sys.executable, os.path.abspath(__file__), "--one", str(w), "--corpus", args.corpus,
               "--vocab", args.vocab, "--dupe_factor", str(args.dupe_factor),
               "--num_shards", str(args.num_shards)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
        if proc.returncode or not lines:
            print(f"{w} worker(s): FAILED\n{proc.stderr[-3000:]}")
            continue
        r = json.loads(lines[-1])
        st = r["stats"]
        inst = st["num_train_instances"] + st["num_eval_instances"]
        print(f"{w} worker(s): {r['wall']:.1f} s wall, {mb / r['wall'] / w:.2f} MB/s/core "
              f"({mb / r['wall']:.2f} MB/s total), {inst / r['wall']:,.0f} instances/s "
              f"({inst:,} instances, {r['out_bytes'] / 2**20:.0f} MB of records), peak RSS "
              f"driver {r['rss_driver_mb']:.0f} MB, largest worker {r['rss_worker_max_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
