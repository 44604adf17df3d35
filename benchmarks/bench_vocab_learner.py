#!/usr/bin/env python3
"""The vocabulary's learning step (after the word count): tensorflow-text's learner against
components/pretraining_data/wordpiece_learner.py, on word counts of growing size.

    .venv/bin/python benchmarks/bench_vocab_learner.py [--corpus FILE] [--distinct 400000,1000000,5000000]
        [--reference_up_to 70000] [--vocab_size 30522]

Inputs: the counts of a real-text corpus (`--corpus`, counted as `bertpipe vocab` counts,
uncased), and synthetic counts of N distinct words (`--distinct`): made-up words with
English letter frequencies and lengths, Zipf(1.1) counts scaled to 3.3 billion words
(Wikipedia + BooksCorpus), so the N-th word is counted ~14 times at N = 5M, about where
`bertpipe vocab`'s cut-off (5M words, tensorflow-text's max_input_tokens) falls.

Each learner runs in a fresh process (peak RSS is its own). tensorflow-text's learner runs
whole only up to `--reference_up_to` distinct words; above, up to `--reference_step_up_to`,
one threshold step of it is timed and multiplied by the number of steps the fast learner's
search took (the two search the same thresholds), marked "projected". Where both ran whole, the vocabularies are compared.
"""
import argparse
import json
import os
import resource
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import fresh_process  # noqa: E402
import synthetic_corpus  # noqa: E402
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS_IN_WIKIPEDIA_AND_BOOKS = 3.3e9


def synthetic_counts(distinct: int, seed: int = 0) -> dict:
    """{word: count}: `distinct` made-up words, Zipf(1.1) counts totalling ~3.3e9."""
    import numpy as np

    rng = np.random.default_rng(seed)
    # Longer than the corpus lexicon's words (median ~7 letters, up to 30): the rare tail.
    ranked = [w.decode() for w in synthetic_corpus.made_up_words(rng, distinct, log_mean_length=1.9,
                                                                  max_length=30)]
    ranks = np.arange(1, distinct + 1, dtype=np.float64)
    weights = ranks ** -1.1
    counts = np.maximum(1, np.round(WORDS_IN_WIKIPEDIA_AND_BOOKS * weights / weights.sum())).astype(int)
    return dict(zip(ranked, counts.tolist()))


def corpus_counts(path: str) -> dict:
    from components.pretraining_data import word_counts

    counts: dict = {}
    batch = []
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                batch.append(line.rstrip(b"\n"))
            if len(batch) >= word_counts.BATCH_LINES:
                word_counts.count_words(batch, True, counts)
                batch = []
    word_counts.count_words(batch, True, counts)
    return {w.decode("utf-8", "ignore"): c for w, c in sorted(counts.items())}


def _child(args) -> None:
    """One learner run in this fresh process; prints a JSON line."""
    with open(args.counts) as f:
        counts = json.load(f)
    kwargs = dict(vocab_size=args.vocab_size, reserved_tokens=SPECIAL, lower_thresh=10)
    started = time.time()
    result = {}
    if args.child == "fast":
        from components.pretraining_data import wordpiece_learner

        steps = []
        vocab = wordpiece_learner.learn(counts, on_step=steps.append, **kwargs)
        result.update(steps=len(steps), thresholds=[s.thresh for s in steps])
    else:
        from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as lib

        if args.child == "reference":
            vocab = lib.learn(counts, **kwargs)
        else:  # one step, at the fast learner's first threshold
            params = lib.Params(int(1e7), 10, 4, int(5e6), 50, 1000, args.vocab_size, 0.05, True, "##", SPECIAL)
            upper, lower = lib.get_search_threshs(counts.items(), params.upper_thresh, params.lower_thresh)
            all_counts = lib.get_input_words(counts.items(), SPECIAL, 50)
            words = lib.filter_input_words(all_counts, lib.get_allowed_chars(all_counts, 1000), int(5e6))
            started = time.time()
            vocab = lib.learn_with_thresh(words, (upper + lower) // 2, params)
    result["seconds"] = time.time() - started
    result["tokens"] = len(vocab)
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.vocab_out:
        with open(args.vocab_out, "w") as f:
            f.write("\n".join(vocab) + "\n")
    print(json.dumps(result))


def _run(kind: str, counts_path: str, vocab_size: int, vocab_out: str = ""):
    args = ["--child", kind, "--counts", counts_path, "--vocab_size", str(vocab_size)]
    if vocab_out:
        args += ["--vocab_out", vocab_out]
    return fresh_process.run_json(__file__, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", help="a real-text corpus to count (e.g. from benchmarks/corpus.py)")
    parser.add_argument("--distinct", default="400000,1000000,5000000",
                        help="sizes of the synthetic counts, comma-separated ('' for none)")
    parser.add_argument("--reference_up_to", type=int, default=70_000,
                        help="run tensorflow-text's learner whole up to this many distinct words")
    parser.add_argument("--reference_step_up_to", type=int, default=1_000_000,
                        help="above --reference_up_to, time one step of tensorflow-text's learner up to this many")
    parser.add_argument("--vocab_size", type=int, default=30522)
    parser.add_argument("--child", choices=["fast", "reference", "reference_step"], help=argparse.SUPPRESS)
    parser.add_argument("--counts", help=argparse.SUPPRESS)
    parser.add_argument("--vocab_out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    inputs = []
    if args.corpus:
        inputs.append((os.path.basename(args.corpus), lambda: corpus_counts(args.corpus)))
    for n in [int(x) for x in args.distinct.split(",") if x]:
        inputs.append((f"synthetic {n:,}", lambda n=n: synthetic_counts(n)))
    print(f"{'counts':>22} {'distinct':>10} {'learner':>26} {'seconds':>9} {'steps':>5} {'tokens':>7} "
          f"{'peak RSS MB':>11}  notes", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in inputs:
            counts = make()
            path = os.path.join(tmp, "counts.json")
            with open(path, "w") as f:
                json.dump(counts, f)
            fast_vocab, ref_vocab = os.path.join(tmp, "fast.txt"), os.path.join(tmp, "ref.txt")
            fast = _run("fast", path, args.vocab_size, fast_vocab)
            if fast is None:
                print(f"{name:>22} {len(counts):10,} {'wordpiece_learner':>26}  failed", flush=True)
                continue
            print(f"{name:>22} {len(counts):10,} {'wordpiece_learner':>26} {fast['seconds']:9.1f} "
                  f"{fast['steps']:5d} {fast['tokens']:7,} {fast['rss_mb']:11.0f}", flush=True)
            if len(counts) <= args.reference_up_to:
                ref = _run("reference", path, args.vocab_size, ref_vocab)
                with open(fast_vocab) as a, open(ref_vocab) as b:
                    same = a.read() == b.read()
                print(f"{name:>22} {len(counts):10,} {'tensorflow-text':>26} {ref['seconds']:9.1f} "
                      f"{fast['steps']:5d} {ref['tokens']:7,} {ref['rss_mb']:11.0f}  "
                      f"{ref['seconds'] / fast['seconds']:.1f}x the time; vocabularies "
                      f"{'identical' if same else 'DIFFER'}", flush=True)
            elif len(counts) <= args.reference_step_up_to:
                one = _run("reference_step", path, args.vocab_size)
                projected = one["seconds"] * fast["steps"]
                print(f"{name:>22} {len(counts):10,} {'tensorflow-text (projected)':>26} {projected:9.1f} "
                      f"{fast['steps']:5d} {'':>7} {one['rss_mb']:11.0f}  one step took {one['seconds']:.1f} s; "
                      f"{projected / fast['seconds']:.1f}x the time", flush=True)


if __name__ == "__main__":
    main()
