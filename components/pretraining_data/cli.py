"""`bertpipe vocab` and `bertpipe prepare-data`: argument parsing only, then plain functions.

Flag names are google-research/bert's create_pretraining_data.py flags, so its
command lines work unchanged; the options this project adds are listed after them.
Other Beam flags reach the pipeline through --beam_arg (repeatable), or, when
the caller parses with parse_known_args, as the leftover unknown flags.
"""
import argparse
import sys

from components.pretraining_data.options import PretrainingDataOptions

_DEFAULTS = PretrainingDataOptions()


def parse_bool(value: str) -> bool:
    """absl-style booleans: --do_lower_case=false works as in the original."""
    v = str(value).strip().lower()
    if v in ("1", "true", "t", "yes", "y"):
        return True
    if v in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def register(subparsers) -> None:
    """Adds the `vocab` and `prepare-data` subcommands; each sets func(args) -> exit code."""
    v = subparsers.add_parser(
        "vocab", help="learn a WordPiece vocabulary from a corpus",
        description="Learn a WordPiece vocabulary (tensorflow-text's BERT vocabulary learner). "
                    "The first five tokens are [PAD] [UNK] [CLS] [SEP] [MASK] (ids 0-4).")
    v.add_argument("--input_file", required=True,
                   help="corpus files or globs, comma-separated (plain or .gz); one sentence "
                        "per line, blank line between documents")
    v.add_argument("--vocab_file", "--output", dest="vocab_file", required=True,
                   help="where to write vocab.txt (written to a temp name, then renamed)")
    v.add_argument("--vocab_size", type=int, default=30522,
                   help="target size including special tokens (default 30522, as BERT); a "
                        "small corpus may give fewer")
    v.add_argument("--do_lower_case", type=parse_bool, nargs="?", const=True, default=True,
                   help="uncased: lower-case and strip accents (default true; "
                        "--do_lower_case=false for a cased vocabulary)")
    v.add_argument("--vocab_sample_lines", "--max_lines", dest="vocab_sample_lines", type=int, default=None,
                   metavar="N",
                   help="count words in a uniform sample of about N lines of the whole corpus (each "
                        "non-blank line kept with probability N / lines) instead of every line; "
                        "faster, less complete (default: every line). --max_lines, which used to "
                        "read the first N lines, now means this")
    v.add_argument("--sample_seed", type=int, default=0,
                   help="seed of the --vocab_sample_lines sample (default %(default)s)")
    _add_runner_flags(v)
    v.set_defaults(func=run_vocab, accepts_unknown_args=True)

    p = subparsers.add_parser(
        "prepare-data", help="text -> BERT pretraining TFRecords (Apache Beam)",
        description="Create masked-LM / next-sentence TFRecords as google-research/bert's "
                    "create_pretraining_data.py, as a parallel Apache Beam job. Give either "
                    "--output_dir (sharded, train/ and eval/ split by document) or --output_file "
                    "(the original: all instances, no split). Unknown flags go to Beam.",
        epilog="Local: --direct_num_workers=4. Dataflow: --runner=DataflowRunner "
               "--setup_file=./setup.py --project=P --region=R --temp_location=gs://B/tmp")
    p.add_argument("--input_file", required=True,
                   help="input files or globs, comma-separated (plain or .gz)")
    p.add_argument("--vocab_file", required=True,
                   help="vocab.txt with [PAD] [UNK] [CLS] [SEP] [MASK]")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--output_dir",
                     help="write train/part-*-of-N.tfrecord and eval/part-*.tfrecord here "
                          "(replaced atomically when the job succeeds)")
    out.add_argument("--output_file",
                     help="original semantics: output TFRecord file(s), comma-separated; all "
                          "instances, no eval split")
    p.add_argument("--max_seq_length", type=int, default=_DEFAULTS.max_seq_length,
                   help="maximum sequence length (default %(default)s)")
    p.add_argument("--max_predictions_per_seq", type=int,
                   default=_DEFAULTS.max_predictions_per_seq,
                   help="maximum masked LM predictions per sequence (default %(default)s)")
    p.add_argument("--masked_lm_prob", type=float, default=_DEFAULTS.masked_lm_prob,
                   help="masked LM probability (default %(default)s)")
    p.add_argument("--dupe_factor", type=int, default=None,
                   help="times to duplicate the input data with different masks "
                        f"(default {_DEFAULTS.dupe_factor}; 1 with --dynamic_masking)")
    p.add_argument("--dynamic_masking", type=parse_bool, nargs="?", const=True, default=False,
                   help="write train/ unmasked, once (dupe_factor 1): the trainer masks as it reads, "
                        "anew every epoch (bertpipe run --dynamic_masking); eval/ is masked once "
                        "(default false)")
    p.add_argument("--short_seq_prob", type=float, default=_DEFAULTS.short_seq_prob,
                   help="probability of creating sequences shorter than the maximum "
                        "(default %(default)s)")
    p.add_argument("--do_lower_case", type=parse_bool, nargs="?", const=True,
                   default=_DEFAULTS.do_lower_case,
                   help="lower-case the input; true for uncased vocabularies (default true)")
    p.add_argument("--do_whole_word_mask", type=parse_bool, nargs="?", const=True,
                   default=_DEFAULTS.do_whole_word_mask,
                   help="mask whole words instead of WordPieces (default false)")
    p.add_argument("--random_seed", type=int, default=_DEFAULTS.random_seed,
                   help="random seed for data generation (default %(default)s)")
    p.add_argument("--num_shards", type=int, default=_DEFAULTS.num_shards,
                   help="files per split with --output_dir (default %(default)s)")
    p.add_argument("--eval_fraction", type=float, default=_DEFAULTS.eval_fraction,
                   help="fraction of documents for eval/ with --output_dir (default "
                        "%(default)s)")
    p.add_argument("--min_eval_instances", type=int, default=1,
                   help="with --output_dir, fail (naming the document counts and the fix) when the "
                        "document split leaves eval/ fewer instances than this, e.g. the eval batch "
                        "size (default %(default)s: eval must not be empty)")
    _add_runner_flags(p)
    p.set_defaults(func=run_prepare_data, accepts_unknown_args=True)


def _add_runner_flags(p) -> None:
    """Beam runner and progress flags, shared by `vocab` and `prepare-data`."""
    p.add_argument("--runner", default=None,
                   help="Beam runner (default DirectRunner, multi_threading; DataflowRunner: see "
                        "docs/data_at_scale.md)")
    p.add_argument("--direct_num_workers", type=int, default=None,
                   help="DirectRunner workers (default 2; threads unless "
                        "--beam_arg=--direct_running_mode=multi_processing)")
    p.add_argument("--setup_file", default=None,
                   help="for remote runners: ./setup.py, which ships this project's packages")
    p.add_argument("--beam_arg", action="append", default=[],
                   help="any other Beam pipeline argument, repeatable, e.g. "
                        "--beam_arg=--project=P --beam_arg=--region=R")
    p.add_argument("--progress_seconds", type=float, default=30.0,
                   help="seconds between progress lines (text read of the total, items made, ETA; "
                        "default %(default)s)")


def options_from_args(args) -> PretrainingDataOptions:
    return PretrainingDataOptions(
        max_seq_length=args.max_seq_length,
        max_predictions_per_seq=args.max_predictions_per_seq,
        masked_lm_prob=args.masked_lm_prob,
        dupe_factor=(args.dupe_factor if args.dupe_factor is not None
                     else 1 if args.dynamic_masking else _DEFAULTS.dupe_factor),
        dynamic_masking=args.dynamic_masking,
        short_seq_prob=args.short_seq_prob,
        do_lower_case=args.do_lower_case,
        do_whole_word_mask=args.do_whole_word_mask,
        random_seed=args.random_seed,
        eval_fraction=args.eval_fraction,
        num_shards=args.num_shards,
    )


def beam_args_from(args, extra=None):
    out = list(getattr(args, "beam_arg", None) or []) + list(extra or [])
    if args.runner:
        out.append(f"--runner={args.runner}")
    if args.direct_num_workers is not None:
        out.append(f"--direct_num_workers={args.direct_num_workers}")
    if args.setup_file:
        out.append(f"--setup_file={args.setup_file}")
    return out


def run_vocab(args, beam_args=None) -> int:
    """Counts and learns; beam_args: unknown flags the caller's parse_known_args left over."""
    from components.pretraining_data import vocab

    try:
        if args.progress_seconds <= 0:
            raise ValueError(f"--progress_seconds={args.progress_seconds} must be > 0.")
        n = vocab.learn_vocabulary([args.input_file], args.vocab_file, args.vocab_size,
                                   args.do_lower_case, sample_lines=args.vocab_sample_lines,
                                   beam_pipeline_args=beam_args_from(args, beam_args), seed=args.sample_seed,
                                   progress_interval=args.progress_seconds)
    except ValueError as e:
        print(f"bertpipe vocab: error: {e}", file=sys.stderr)
        return 2
    if n == 0:
        print("Dry run: the word-count job was built and not submitted; nothing written.")
        return 0
    print(f"Wrote {n} tokens to {args.vocab_file}")
    return 0


def run_prepare_data(args, beam_args=None) -> int:
    """Runs the job; beam_args: unknown flags the caller's parse_known_args left over."""
    from components.pretraining_data import beam_job

    try:
        options = options_from_args(args).validate()
        if args.progress_seconds <= 0:
            raise ValueError(f"--progress_seconds={args.progress_seconds} must be > 0.")
        extra = beam_args_from(args, beam_args)
        if args.output_file:
            stats = beam_job.run_prepare_data_to_files(
                [args.input_file], args.vocab_file, args.output_file.split(","), options, extra,
                progress_interval=args.progress_seconds)
            where = args.output_file
        else:
            stats = beam_job.run_prepare_data([args.input_file], args.vocab_file, args.output_dir,
                                              options, extra, progress_interval=args.progress_seconds,
                                              min_eval_instances=args.min_eval_instances)
            where = args.output_dir
    except ValueError as e:
        print(f"bertpipe prepare-data: error: {e}", file=sys.stderr)
        return 2
    if stats.get("dry_run"):
        print(f"Dry run: the job for {stats['num_files']} file(s), {stats['input_bytes']:,} bytes, was built "
              "and not submitted; nothing written.")
        return 0
    print(f"Wrote {stats['num_train_instances']} train and {stats['num_eval_instances']} eval "
          f"instances from {stats['num_documents']} documents to {where} "
          f"in {stats['seconds']:.1f} s")
    return 0


def main(argv=None) -> int:
    """Standalone entry point (the project's `bertpipe` calls register() instead)."""
    parser = argparse.ArgumentParser(prog="bertpipe")
    register(parser.add_subparsers(dest="command", required=True))
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "accepts_unknown_args", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if unknown:
        return args.func(args, unknown)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
