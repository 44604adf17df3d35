"""`bertpipe`: the command line of the BERT pretraining pipeline.

    bertpipe run           the whole pipeline locally (LocalDagRunner, SQLite metadata)
    bertpipe retrain       run it again, warm-started, only if a new span of data arrived
    bertpipe compile       the Vertex AI pipeline spec (KubeflowV2DagRunner JSON)
    bertpipe vocab         learn a WordPiece vocabulary
    bertpipe prepare-data  text -> pretraining TFRecords (create_pretraining_data's flags)

Flags keep run_pretraining.py / create_pretraining_data.py's names, so their users
find what they know. This module is the entry point: the only place that reads flags
and config files; everything below receives explicit values.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from typing import Optional, Sequence

from components.pretraining_data.cli import parse_bool
from components.pretraining_data.cli import register as register_data_commands
from pipeline.config import PipelineConfig, local_default
from pipeline.retrain import EXIT_CODES as RETRAIN_EXIT_CODES

# Flags that override PipelineConfig.training / .data / .evaluation fields of the same name.
TRAINING_FLAGS = {
    "train_batch_size": int, "eval_batch_size": int, "learning_rate": float, "num_train_steps": int,
    "num_warmup_steps": int, "save_checkpoints_steps": int, "iterations_per_loop": int, "max_eval_steps": int,
    "keep_checkpoint_max": int, "init_checkpoint": str, "tpu_name": str, "tpu_zone": str, "gcp_project": str,
    "optimizer_type": str, "mixed_precision": str,
}
DATA_FLAGS = {"max_seq_length": int, "max_predictions_per_seq": int, "masked_lm_prob": float, "dupe_factor": int,
              "short_seq_prob": float, "random_seed": int, "eval_fraction": float, "num_shards": int}
EVALUATION_FLAGS = {"min_masked_lm_accuracy": float, "min_next_sentence_accuracy": float,
                    "max_masked_lm_accuracy_drop": float, "max_next_sentence_accuracy_drop": float}
EVALUATION_HELP = {
    "min_masked_lm_accuracy": "blessing lower bound",
    "min_next_sentence_accuracy": "blessing lower bound",
    "max_masked_lm_accuracy_drop": "retraining: how far the candidate's masked_lm_accuracy may fall below the "
                                   "latest blessed model's on the same eval split (default 0)",
    "max_next_sentence_accuracy_drop": "retraining: the same for next_sentence_accuracy (default: not compared)",
}


def add_pipeline_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `run` and `compile`: what to train on and how."""
    source = parser.add_argument_group("data and model")
    source.add_argument("--config", help="PipelineConfig JSON file; flags given override its values "
                                         "(default: the embedded local default)")
    source.add_argument("--corpus", help="raw text: comma-separated files or globs, one sentence per line, "
                                         "blank line between documents (default: the shipped corpus); "
                                         "one pattern with {SPAN} (e.g. 'corpus/span-{SPAN}/*.txt') for data "
                                         "arriving over time: the newest span is trained on")
    source.add_argument("--examples", help="directory of existing pretraining TFRecords (create_pretraining_data "
                                           "schema; train/ and eval/ subdirectories, or one directory split 9:1); "
                                           "skips vocabulary learning and data generation; may hold {SPAN} "
                                           "(and {VERSION}), e.g. 'records/span-{SPAN}'")
    source.add_argument("--vocab_file", help="an existing WordPiece vocab.txt (skips vocabulary learning)")
    source.add_argument("--vocab_size", type=int, help="size of the vocabulary to learn")
    source.add_argument("--num_spans", type=int, help="with a {SPAN} corpus: train on the newest N spans (a "
                                                      "rolling window; eval on the newest span) (default 1)")
    source.add_argument("--bert_config_file", help="bert_config.json of the model to pretrain")
    source.add_argument("--bert_preset", help="a shipped BERT config (bert_test, bert_tiny, bert_mini, bert_small, "
                                              "bert_medium, bert_base, bert_large)")
    source.add_argument("--do_lower_case", type=parse_bool, nargs="?", const=True, help="lower-case the text (true/false)")
    source.add_argument("--do_whole_word_mask", type=parse_bool, nargs="?", const=True, help="mask whole words (true/false)")
    source.add_argument("--pipeline_name", help="the pipeline's name in ML-metadata / Vertex AI")
    for name, kind in DATA_FLAGS.items():
        source.add_argument(f"--{name}", type=kind, help=f"create_pretraining_data/run_pretraining --{name}")
    training = parser.add_argument_group("training (run_pretraining.py's flags)")
    for name, kind in TRAINING_FLAGS.items():
        training.add_argument(f"--{name}", type=kind)
    training.add_argument("--use_tpu", type=parse_bool, nargs="?", const=True, help="train on a TPU (true/false)")
    training.add_argument("--use_xla", type=parse_bool, nargs="?", const=True, help="XLA-compile the training step (true/false)")
    gate = parser.add_argument_group("evaluation gate")
    for name, kind in EVALUATION_FLAGS.items():
        gate.add_argument(f"--{name}", type=kind, help=EVALUATION_HELP[name])


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The PipelineConfig: --config file (or the local default) with the flags given applied."""
    config = PipelineConfig.from_json_file(args.config) if args.config else local_default()
    top = {"corpus_pattern": args.corpus, "examples_dir": args.examples, "vocab_file": args.vocab_file,
           "vocab_size": args.vocab_size, "num_spans": args.num_spans, "bert_config_file": args.bert_config_file,
           "bert_preset": args.bert_preset, "pipeline_name": args.pipeline_name}
    config = config.replace(**{k: v for k, v in top.items() if v is not None})
    if args.examples:
        config = config.replace(corpus_pattern="")
    data = {k: getattr(args, k) for k in DATA_FLAGS if getattr(args, k) is not None}
    for flag in ("do_lower_case", "do_whole_word_mask"):
        if getattr(args, flag) is not None:
            data[flag] = getattr(args, flag)
    training = {k: getattr(args, k) for k in TRAINING_FLAGS if getattr(args, k) is not None}
    for flag in ("use_tpu", "use_xla"):
        if getattr(args, flag) is not None:
            training[flag] = getattr(args, flag)
    evaluation = {k: getattr(args, k) for k in EVALUATION_FLAGS if getattr(args, k) is not None}
    config = config.replace(data=dataclasses.replace(config.data, **data),
                            training=dataclasses.replace(config.training, **training),
                            evaluation=dataclasses.replace(config.evaluation, **evaluation))
    config.validate()
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline import local_runner  # Deferred: TFX/TF imports take seconds; --help should not.

    config = config_from_args(args)
    paths = local_runner.LocalPaths.under(args.output_dir, args.pipeline_root, args.metadata_path, args.serving_dir)
    beam_args = local_runner.default_beam_args(args.direct_num_workers) + list(args.beam_arg or [])
    summary = local_runner.run_local(config, paths, beam_args, enable_cache=args.enable_cache)
    print(summary.render())
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from pipeline import local_runner, retrain  # local_runner deferred, as above.

    config = config_from_args(args)
    paths = local_runner.LocalPaths.under(args.output_dir, args.pipeline_root, args.metadata_path, args.serving_dir)
    decision = retrain.decide(config, paths.metadata_path, force=args.force)
    if not decision.run:
        print(f"retrain: {decision.reason}; nothing was run.")
        return retrain.EXIT_OK
    print(f"retrain: {decision.reason}.")
    beam_args = local_runner.default_beam_args(args.direct_num_workers) + list(args.beam_arg or [])
    try:
        summary = local_runner.run_local(config, paths, beam_args, enable_cache=args.enable_cache, retraining=True)
    except ValueError:
        raise  # bad input: main prints it on one line, exit 2
    except Exception as e:  # noqa: BLE001 - any other failure of the run: one line and its own exit code
        print(f"bertpipe retrain: failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
              file=sys.stderr)
        return retrain.EXIT_FAILED
    print(summary.render())
    print(retrain.result_line(summary, decision))
    return retrain.exit_code(summary)


def cmd_compile(args: argparse.Namespace) -> int:
    from kubeflow import runner  # Deferred, as above.

    config = config_from_args(args)
    path = runner.compile_pipeline(config, pipeline_root=args.pipeline_root, output_path=args.output,
                                   image=args.image, serving_model_dir=args.serving_dir,
                                   beam_pipeline_args=list(args.beam_arg or []), retraining=args.retrain)
    print(f"Wrote the Vertex AI pipeline spec to {path}")
    return 0


def add_local_run_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of a local run (`run`, `retrain`): where outputs go and how Beam runs."""
    where = parser.add_argument_group("where outputs go")
    where.add_argument("--output_dir", default="outputs", help="base directory of the run (default: ./outputs)")
    where.add_argument("--pipeline_root", help="TFX pipeline root (default: OUTPUT_DIR/tfx_root)")
    where.add_argument("--metadata_path", help="ML-metadata SQLite file (default: OUTPUT_DIR/metadata.sqlite)")
    where.add_argument("--serving_dir", help="Pusher destination (default: OUTPUT_DIR/serving_model)")
    parser.add_argument("--direct_num_workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="Beam DirectRunner worker processes for the data steps")
    parser.add_argument("--beam_arg", action="append", help="extra Beam pipeline argument (repeatable)")
    parser.add_argument("--enable_cache", action="store_true", help="reuse unchanged steps of earlier runs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bertpipe", description="Pretrain BERT (masked LM + next sentence) as a TFX pipeline: "
                                     "locally with LocalDagRunner, or compiled for Vertex AI.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run the whole pipeline locally", description=(
        "Run corpus -> vocabulary -> pretraining records -> ImportExampleGen -> Trainer -> Evaluator -> "
        "Pusher with LocalDagRunner and ML-metadata in SQLite, then print where the model, the eval "
        "metrics and the metadata store are. Without flags: the shipped corpus and a tiny BERT."))
    add_pipeline_flags(run)
    add_local_run_flags(run)
    run.set_defaults(func=cmd_run)

    codes = "\n".join(f"  {code}  {meaning}" for code, meaning in sorted(RETRAIN_EXIT_CODES.items()))
    retrain = sub.add_parser(
        "retrain", help="run again, warm-started from the latest blessed model, if a new span arrived",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=(
            "Find in ML-metadata the latest blessed model and the newest span it was trained on; if the data\n"
            "pattern (--corpus or --examples with {SPAN}) has a newer span, run the pipeline in retraining\n"
            "mode: the Trainer warm-starts from that model and the Evaluator blesses the candidate only if it\n"
            "clears the value bounds and does not fall behind that model by more than\n"
            "--max_masked_lm_accuracy_drop on the newest eval split. Otherwise print that there is nothing\n"
            "new and run nothing. The last line gives candidate and baseline metrics, blessing and push."),
        epilog=f"exit codes:\n{codes}")
    add_pipeline_flags(retrain)
    add_local_run_flags(retrain)
    retrain.add_argument("--force", action="store_true", help="run even if no new span arrived")
    retrain.set_defaults(func=cmd_retrain)

    comp = sub.add_parser("compile", help="write the Vertex AI pipeline spec", description=(
        "Compile the pipeline with KubeflowV2DagRunner into a PipelineSpec JSON for Vertex AI Pipelines."))
    add_pipeline_flags(comp)
    comp.add_argument("--output", default="pipeline.json", help="the JSON file to write")
    comp.add_argument("--pipeline_root", default="gs://YOUR_BUCKET/bert-pretraining",
                      help="pipeline root on Cloud Storage")
    comp.add_argument("--serving_dir", help="Pusher destination (default: PIPELINE_ROOT/serving_model)")
    comp.add_argument("--image", default="gcr.io/YOUR_PROJECT/bert-tfx-pipeline:latest",
                      help="container image with this project installed (see kubeflow/Dockerfile)")
    comp.add_argument("--beam_arg", action="append", help="Beam pipeline argument, e.g. --runner=DataflowRunner")
    comp.add_argument("--retrain", action="store_true",
                      help="the retraining pipeline: warm start from, and comparison with, the latest blessed "
                           "model (its resolver runs in the spec)")
    comp.set_defaults(func=cmd_compile)

    register_data_commands(sub)
    return parser


def configure_logging() -> None:
    """The project's own progress lines (training steps, data stats) at INFO on stderr;
    TFX, Beam and TensorFlow stay at their defaults (warnings)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    for name in ("components", "pipeline", "kubeflow"):
        project_logger = logging.getLogger(name)
        if not project_logger.handlers:
            project_logger.addHandler(handler)
        project_logger.setLevel(logging.INFO)
        project_logger.propagate = False


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        return args.func(args)
    except ValueError as e:
        print(f"bertpipe {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
