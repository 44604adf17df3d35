#!/usr/bin/env python3
"""How the two data steps scale with the corpus: the vocabulary's word count and the
pretraining data, on the DirectRunner with 1 and 2 workers (threads), on synthetic corpora.

    .venv/bin/python benchmarks/bench_scaling.py [--sizes 100,300,1000] [--workers 1,2]
        [--steps vocab,data] [--dupe_factor 10]

Each run is a fresh process. Prints one row per (size, step, workers): wall time, MB of
text per second, peak RSS of the process (the DirectRunner's workers are threads of it,
so this is the memory of all of them together) and output bytes per input byte. The
vocabulary step is the Beam word count then the learner (wordpiece_learner.py, one
process, on the counts); the notes give the two times apart. Corpora come from
benchmarks/synthetic_corpus.py and are cached in benchmarks/out/; the data step's
vocabulary is the one the first vocabulary run learned (kept in benchmarks/out/), or, when
only the data step runs, one made from the synthetic lexicon (_lexicon_vocab). Outputs are deleted
after each run.
"""
import argparse
import json
import os
import resource
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "benchmarks", "out")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import fresh_process  # noqa: E402


def _corpus(mb: float) -> str:
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import synthetic_corpus

    path = os.path.join(OUT, f"synthetic_{mb:g}mb.txt")
    if not os.path.exists(path):
        synthetic_corpus.write_corpus(path, mb)
    return path


def _lexicon_vocab(path: str, size: int) -> None:
    """The data step's vocabulary: the special tokens, letters, '##'+letters and punctuation,
    then the synthetic lexicon's most frequent words, up to `size` tokens: for data-only
    runs, without a learned vocabulary."""
    import numpy as np

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import synthetic_corpus

    from components.pretraining_data import vocab

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = list(vocab.SPECIAL_TOKENS) + [".", ","] + letters + ["##" + c for c in letters]
    words = [w.decode() for w in synthetic_corpus.lexicon(np.random.default_rng(0))]
    tokens += [w for w in words if w not in set(tokens)][:size - len(tokens)]
    vocab.write_vocabulary(tokens, path)


def _child(args) -> None:
    """One run in this (fresh) process; prints a JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    beam_args = [f"--direct_num_workers={args.workers}", "--direct_running_mode=multi_threading"]
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        result = {}
        started = time.time()
        if args.step == "vocab":  # the word count: the part of the vocabulary step that grows with the corpus
            import apache_beam as beam

            from components.pretraining_data import beam_job, text_reader, word_counts

            files = text_reader.expand_patterns([args.corpus])
            ranges = text_reader.split_ranges(files, beam_job.range_bytes_for(beam_job.input_bytes(files)))
            out = os.path.join(tmp, "counts")
            with beam.Pipeline(options=beam_job.beam_options(beam_args)) as p:
                word_counts.build_pipeline(p, ranges, out, True)
            counts = word_counts.read_counts(out)
            result["distinct_words"] = len(counts)
            result["count_wall"] = time.time() - started
            from components.pretraining_data import vocab, wordpiece_learner

            learn_started = time.time()
            tokens = wordpiece_learner.learn(counts, args.vocab_size, list(vocab.SPECIAL_TOKENS), lower_thresh=10)
            result["learn_wall"] = time.time() - learn_started
            result["tokens"] = len(tokens)
            if args.keep_vocab and not os.path.exists(args.keep_vocab):
                vocab.write_vocabulary(tokens, args.keep_vocab)
        else:
            from components.pretraining_data import beam_job
            from components.pretraining_data.options import PretrainingDataOptions

            out = os.path.join(tmp, "records")
            options = PretrainingDataOptions(max_seq_length=128, dupe_factor=args.dupe_factor)
            stats = beam_job.run_prepare_data([args.corpus], args.vocab, out, options, beam_args,
                                              progress_interval=3600)
            result["instances"] = stats["num_train_instances"] + stats["num_eval_instances"]
        result["wall"] = time.time() - started
        result["out_bytes"] = (os.path.getsize(out) if os.path.isfile(out) else
                               sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs))
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _run(step, corpus, workers, vocab=None, keep_vocab=None, dupe_factor=10, vocab_size=30522):
    args = ["--child", step, "--corpus", corpus, "--workers", str(workers),
            "--dupe_factor", str(dupe_factor), "--vocab_size", str(vocab_size)]
    if vocab:
        args += ["--vocab", vocab]
    if keep_vocab:
        args += ["--keep_vocab", keep_vocab]
    return fresh_process.run_json(__file__, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,300", help="corpus sizes in MB (10**6 bytes)")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--steps", default="vocab,data")
    parser.add_argument("--dupe_factor", type=int, default=10)
    parser.add_argument("--vocab_size", type=int, default=30522,
                        help="of the data step's vocabulary, learnt once from the first size's counts")
    parser.add_argument("--child", choices=["vocab", "data"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--vocab", help=argparse.SUPPRESS)
    parser.add_argument("--keep_vocab", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(argparse.Namespace(step=args.child, corpus=args.corpus, workers=int(args.workers),
                                  vocab=args.vocab, keep_vocab=args.keep_vocab, dupe_factor=args.dupe_factor,
                                  vocab_size=args.vocab_size))
        return
    os.makedirs(OUT, exist_ok=True)
    sizes = [float(s) for s in args.sizes.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    steps = args.steps.split(",")
    vocab_path = os.path.join(OUT, f"synthetic_vocab_{args.vocab_size}.txt")
    print(f"{'MB':>6} {'step':>5} {'workers':>7} {'wall s':>8} {'MB/s':>6} {'peak RSS MB':>11} "
          f"{'out/in':>7}  notes", flush=True)
    for mb in sizes:
        corpus = _corpus(mb)
        size = os.path.getsize(corpus) / 1e6
        for step in steps:
            for n in workers:
                if step == "data" and not os.path.exists(vocab_path):
                    _lexicon_vocab(vocab_path, args.vocab_size)
                r = _run(step, corpus, n, vocab=vocab_path, keep_vocab=vocab_path, dupe_factor=args.dupe_factor,
                         vocab_size=args.vocab_size)
                if r is None:
                    print(f"{size:6.0f} {step:>5} {n:7d}  failed", flush=True)
                    continue
                notes = (f"{r['distinct_words']:,} distinct words; count {r['count_wall']:.1f} s, "
                         f"learn {r['tokens']:,} tokens {r['learn_wall']:.1f} s" if step == "vocab"
                         else f"{r['instances']:,} instances")
                print(f"{size:6.0f} {step:>5} {n:7d} {r['wall']:8.1f} {size / r['wall']:6.2f} {r['rss_mb']:11.0f} "
                      f"{r['out_bytes'] / (size * 1e6):7.3f}  {notes}", flush=True)


if __name__ == "__main__":
    main()
