"""`bertpipe`: the command line of the BERT pretraining pipeline.

    bertpipe run           the whole pipeline locally (LocalDagRunner, SQLite metadata)
    bertpipe retrain       run it again, warm-started, only if a new span of data arrived
    bertpipe compile       the Vertex AI pipeline spec (KubeflowV2DagRunner JSON)
    bertpipe run-spec      run a compiled spec here, as Vertex AI would (no containers)
    bertpipe submit        submit a compiled spec to Vertex AI Pipelines (and wait for it)
    bertpipe vocab         learn a WordPiece vocabulary
    bertpipe prepare-data  text -> pretraining TFRecords (create_pretraining_data's flags)
    bertpipe lineage       which data, vocabulary, config and code made which model (ML-metadata)

Flags keep run_pretraining.py / create_pretraining_data.py's names, so their users
find what they know. This module is the entry point: the only place that reads flags
and config files; everything below receives explicit values.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from typing import Optional, Sequence

from components.lineage.cli import add_mysql_flags, mysql_target
from components.lineage.cli import register as register_lineage_commands
from components.pretraining_data.cli import parse_bool
from components.pretraining_data.cli import register as register_data_commands
from pipeline import input_checks, run_lock
from pipeline.config import PipelineConfig, local_default
from pipeline.phases import Phase2Config
from pipeline.local_paths import LocalPaths, locked_locations
from pipeline.retrain import EXIT_CODES as RETRAIN_EXIT_CODES

# Flags that override PipelineConfig.training / .data / .evaluation fields of the same name.
TRAINING_FLAGS = {
    "train_batch_size": int, "eval_batch_size": int, "learning_rate": float, "num_train_steps": int,
    "num_warmup_steps": int, "save_checkpoints_steps": int, "iterations_per_loop": int, "max_eval_steps": int,
    "keep_checkpoint_max": int, "init_checkpoint": str, "tpu_name": str, "tpu_zone": str, "gcp_project": str,
    "optimizer_type": str, "mixed_precision": str, "collective_timeout_seconds": float,
}
DATA_FLAGS = {"max_seq_length": int, "max_predictions_per_seq": int, "masked_lm_prob": float, "dupe_factor": int,
              "short_seq_prob": float, "random_seed": int, "eval_fraction": float, "num_shards": int}
# --phase2_<field> flags: PipelineConfig.phase2 (pipeline/phases.py); any of them adds phase 2.
PHASE2_FLAGS = {"max_seq_length": int, "max_predictions_per_seq": int, "num_train_steps": int,
                "num_warmup_steps": int, "train_batch_size": int, "learning_rate": float}
PHASE2_HELP = {
    "max_seq_length": "two-phase pretraining: phase 2's sequence length (e.g. 512 after 128; the BERT config's "
                      "max_position_embeddings must cover it); any --phase2_* flag adds phase 2",
    "max_predictions_per_seq": "phase 2's masked-LM predictions per sequence (default 80)",
    "num_train_steps": "phase 2's steps, after phase 1's --num_train_steps (default 10000)",
    "num_warmup_steps": "phase 2's warm-up: it starts a fresh optimizer (default 1000)",
    "train_batch_size": "phase 2's global batch size (default --train_batch_size)",
    "learning_rate": "phase 2's peak learning rate (default --learning_rate)",
}
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
    source.add_argument("--config", help="PipelineConfig JSON file (see pipeline/config.py): it overrides only "
                                         "the keys it names, on top of the embedded local default, and flags "
                                         "given override it (default: the local default alone)")
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
    source.add_argument("--dynamic_masking", type=parse_bool, nargs="?", const=True,
                        help="records hold unmasked instances, written once (--dupe_factor defaults to 1), and "
                             "the Trainer masks them as it reads them, anew every epoch (true/false)")
    source.add_argument("--pipeline_name", help="the pipeline's name in ML-metadata / Vertex AI")
    for name, kind in DATA_FLAGS.items():
        source.add_argument(f"--{name}", type=kind, help=f"create_pretraining_data/run_pretraining --{name}")
    training = parser.add_argument_group("training (run_pretraining.py's flags)")
    for name, kind in TRAINING_FLAGS.items():
        training.add_argument(f"--{name}", type=kind)
    training.add_argument("--use_tpu", type=parse_bool, nargs="?", const=True, help="train on a TPU (true/false)")
    training.add_argument("--use_xla", type=parse_bool, nargs="?", const=True, help="XLA-compile the training step (true/false)")
    phase2 = parser.add_argument_group("phase 2 of two-phase pretraining (docs/two_phase.md)")
    for name, kind in PHASE2_FLAGS.items():
        phase2.add_argument(f"--phase2_{name}", type=kind, help=PHASE2_HELP[name])
    training.add_argument("--throughput_mode", type=parse_bool, nargs="?", const=True,
                          help="opt-in: pack up to 3 instances per row (no compute on padding, attention per "
                               "instance; --train_batch_size counts rows) and XLA (true/false)")
    gate = parser.add_argument_group("evaluation gate")
    for name, kind in EVALUATION_FLAGS.items():
        gate.add_argument(f"--{name}", type=kind, help=EVALUATION_HELP[name])


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The PipelineConfig: --config file (or the local default) with the flags given applied."""
    config = PipelineConfig.from_json_file(args.config, base=local_default()) if args.config else local_default()
    top = {"corpus_pattern": args.corpus, "examples_dir": args.examples, "vocab_file": args.vocab_file,
           "vocab_size": args.vocab_size, "num_spans": args.num_spans, "bert_config_file": args.bert_config_file,
           "bert_preset": args.bert_preset, "pipeline_name": args.pipeline_name}
    config = config.replace(**{k: v for k, v in top.items() if v is not None})
    if args.examples:
        config = config.replace(corpus_pattern="")
    data = {k: getattr(args, k) for k in DATA_FLAGS if getattr(args, k) is not None}
    for flag in ("do_lower_case", "do_whole_word_mask", "dynamic_masking"):
        if getattr(args, flag) is not None:
            data[flag] = getattr(args, flag)
    if args.dynamic_masking and args.dupe_factor is None:
        data["dupe_factor"] = 1  # one unmasked copy: the masks change every epoch instead
    training = {k: getattr(args, k) for k in TRAINING_FLAGS if getattr(args, k) is not None}
    for flag in ("use_tpu", "use_xla", "throughput_mode"):
        if getattr(args, flag) is not None:
            training[flag] = getattr(args, flag)
    evaluation = {k: getattr(args, k) for k in EVALUATION_FLAGS if getattr(args, k) is not None}
    config = config.replace(data=dataclasses.replace(config.data, **data),
                            training=dataclasses.replace(config.training, **training),
                            evaluation=dataclasses.replace(config.evaluation, **evaluation))
    phase2 = {k: getattr(args, f"phase2_{k}") for k in PHASE2_FLAGS if getattr(args, f"phase2_{k}") is not None}
    if phase2:
        config = config.replace(phase2=dataclasses.replace(config.phase2 or Phase2Config(), **phase2))
    config.validate()
    return config


def _local_paths(args: argparse.Namespace) -> LocalPaths:
    return LocalPaths.under(args.output_dir, args.pipeline_root, args.metadata_path, args.serving_dir)


def check_tpu_is_here(config: PipelineConfig) -> None:
    """--use_tpu with no TPU named or attached: refused before anything runs (not after the data steps)."""
    if config.training.use_tpu:
        from components.trainer import strategy  # Deferred: imports TensorFlow, which the run needs anyway.

        t = config.training
        strategy.check_tpu_request(strategy.tpu_address_from(True, t.tpu_name, t.tpu_zone, t.gcp_project))


def cmd_run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    check_tpu_is_here(config)
    paths = _local_paths(args)
    mysql = mysql_target(args)
    if mysql is not None and args.metadata_path:
        raise ValueError("--metadata_path (SQLite) and --metadata_mysql_database (MySQL) both name a metadata "
                         "store: give one.")
    # The lock first, the imports after: a second run on the same outputs is refused at once.
    input_checks.check_output_dirs(paths)  # where the lock files go
    with run_lock.hold(locked_locations(paths, mysql is not None)):
        from pipeline import local_runner  # Deferred: TFX/TF imports take seconds; --help should not.

        beam_args = local_runner.default_beam_args(args.direct_num_workers) + list(args.beam_arg or [])
        summary = local_runner.run_local(config, paths, beam_args, enable_cache=args.enable_cache, mysql=mysql)
    print(summary.render())
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from pipeline import retrain  # Light: ML-metadata only.

    config = config_from_args(args)
    check_tpu_is_here(config)
    paths = _local_paths(args)
    # Deciding reads the store only; with nothing new, nothing is created or locked.
    decision = retrain.decide(config, paths.metadata_path, force=args.force)
    if not decision.run:
        print(f"retrain: {decision.reason}; nothing was run.")
        return retrain.EXIT_OK
    input_checks.check_output_dirs(paths)
    with run_lock.hold(locked_locations(paths)):
        return _retrain_locked(args, config, paths, decision)


def _retrain_locked(args: argparse.Namespace, config: PipelineConfig, paths: LocalPaths, decision) -> int:
    from pipeline import local_runner, retrain  # Deferred, as above.

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


PHASE2_TRAINER_FLAGS = {
    "machine_type": "phase 2's machine type, e.g. a2-highgpu-8g", "gpu": "phase 2's GPU name",
    "gpu_count": "phase 2's GPUs per machine", "tpu": "phase 2's TPU VM (with --trainer_tpu: both phases or neither)",
    "workers": "phase 2's machines in all, chief included", "image": "phase 2's training image (default "
                                                                      "--trainer_image, then --image)",
}


def vertex_resources_from_args(args: argparse.Namespace):
    """The VertexResources of `bertpipe compile`'s --trainer_*, --phase2_trainer_* and --step_* flags
    (None if none given)."""
    from pipeline import vertex_resources  # Light: no TFX, no TensorFlow.

    trainer = None
    if any(v is not None for v in (args.trainer_machine_type, args.trainer_gpu, args.trainer_gpu_count,
                                   args.trainer_tpu, args.trainer_workers, args.trainer_image)):
        trainer = vertex_resources.trainer_resources(
            region=args.region, project=args.project, image=args.trainer_image or args.image,
            machine_type=args.trainer_machine_type, gpu=args.trainer_gpu, gpu_count=args.trainer_gpu_count,
            tpu=args.trainer_tpu, workers=args.trainer_workers if args.trainer_workers is not None else 1,
            service_account=args.service_account)
        if trainer.is_tpu and not args.trainer_image:
            raise ValueError("--trainer_tpu needs --trainer_image: an image built from kubeflow/Dockerfile.tpu "
                             "(TensorFlow and libtpu as built for Cloud TPU VMs).")
    phase2_trainer = None
    if any(getattr(args, f"phase2_trainer_{k}") is not None for k in PHASE2_TRAINER_FLAGS):
        phase2_trainer = vertex_resources.phase2_trainer_resources(
            region=args.region, project=args.project,
            image=args.phase2_trainer_image or args.trainer_image or args.image,
            machine_type=args.phase2_trainer_machine_type, gpu=args.phase2_trainer_gpu,
            gpu_count=args.phase2_trainer_gpu_count, tpu=args.phase2_trainer_tpu,
            workers=args.phase2_trainer_workers if args.phase2_trainer_workers is not None else 1,
            service_account=args.service_account)
        if phase2_trainer.is_tpu and not (args.phase2_trainer_image or args.trainer_image):
            raise ValueError("--phase2_trainer_tpu needs --phase2_trainer_image (or --trainer_image): an image built "
                             "from kubeflow/Dockerfile.tpu.")
    steps = None
    if args.step_cpu is not None or args.step_memory_gb is not None:
        steps = vertex_resources.StepResources(cpu_limit=args.step_cpu, memory_limit_gb=args.step_memory_gb)
    if trainer is None and steps is None and phase2_trainer is None:
        return None
    return vertex_resources.VertexResources(trainer=trainer, steps=steps, phase2_trainer=phase2_trainer)


def registry_target_from_args(args: argparse.Namespace) -> Optional[dict]:
    """The Pusher's Vertex AI Model Registry target of `compile --registry_model` (None without it)."""
    if not args.registry_model:
        if args.registry_serving_image:
            raise ValueError("--registry_serving_image goes with --registry_model.")
        return None
    from components.pusher import model_registry  # Light: no TFX, no Google Cloud client.

    target = model_registry.RegistryTarget(
        project=args.project, region=args.region, model_id=args.registry_model,
        serving_image=args.registry_serving_image or model_registry.default_serving_image(args.region or ""))
    return target.to_dict()  # compile_pipeline adds the code version it compiles with


def cmd_compile(args: argparse.Namespace) -> int:
    from pipeline.names import check_gcs_uri, check_image  # Light: flag errors come before TFX's import.

    config = config_from_args(args)
    check_image("--image", args.image)
    if not args.local_run:
        check_gcs_uri("--pipeline_root", args.pipeline_root)
    vertex_resources = vertex_resources_from_args(args)
    model_registry = registry_target_from_args(args)
    from kubeflow import runner  # Deferred, as above.

    path = runner.compile_pipeline(config, pipeline_root=args.pipeline_root, output_path=args.output,
                                   image=args.image, serving_model_dir=args.serving_dir,
                                   beam_pipeline_args=list(args.beam_arg or []), retraining=args.retrain,
                                   vertex_resources=vertex_resources, local_run=args.local_run,
                                   model_registry=model_registry)
    print(f"Wrote the Vertex AI pipeline spec to {path}")
    return 0


def cmd_run_spec(args: argparse.Namespace) -> int:
    from kubeflow import spec_runner  # Deferred, as above.

    overrides = {}
    for item in args.parameter or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--parameter {item}: expected NAME=VALUE")
        overrides[name] = value
    result = spec_runner.run_spec(args.spec, args.pipeline_root, args.metadata_path, overrides)
    print(result.render())
    summary = spec_runner.summarize(result)
    if summary is not None:  # as `bertpipe run` ends: metrics, blessing, push
        print(summary.render())
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


def cmd_submit(args: argparse.Namespace) -> int:
    from kubeflow import submit  # Deferred, as above.

    if args.summary_file and not args.wait:
        raise ValueError("--summary_file needs --wait: the summary reports the finished run.")
    if args.force and not args.if_new_span:
        raise ValueError("--force goes with --if_new_span (without it the spec is always submitted).")
    request = submit.request_from(
        args.spec, project=args.project, region=args.region, pipeline_root=args.pipeline_root,
        service_account=args.service_account, network=args.network, enable_caching=args.enable_caching,
        labels=args.label, encryption_key=args.encryption_key, parameters=args.parameter,
        display_name=args.display_name)
    if args.if_new_span:
        from kubeflow import vertex_retrain  # Deferred, as above.

        decision = vertex_retrain.decide(submit.load_spec(args.spec), args.spec, args.project, args.region,
                                         force=args.force)
        if not decision.run:
            line = f"submit: {decision.reason}; no pipeline job was created."
            print(line)
            if args.summary_file:
                submit.append_markdown(args.summary_file, f"## BERT retraining on Vertex AI: not submitted\n\n{line}\n")
            return 0
        print(f"submit: {decision.reason}.", flush=True)
    job, link = submit.submit(request)
    print(f"Submitted {job.resource_name}\n  console: {link}", flush=True)
    if not args.wait:
        return 0
    outcome = submit.wait(job, link)
    print(outcome.render())
    if args.summary_file:
        submit.write_summary(args.summary_file, outcome)
    return 0 if outcome.succeeded else 1


def cmd_code_version(args: argparse.Namespace) -> int:
    from pipeline import code_version  # Light: hashing and git only.

    if args.image_tag:
        print(code_version.image_tag())
    else:
        print(json.dumps(code_version.current().to_dict(), indent=2, sort_keys=True))
    return 0


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
    add_mysql_flags(run)
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
    comp.add_argument("--pipeline_root", help="pipeline root on Cloud Storage, gs://BUCKET/path (required)")
    comp.add_argument("--serving_dir", help="Pusher destination (default: PIPELINE_ROOT/serving_model)")
    comp.add_argument("--image", help="container image with this project installed, built from kubeflow/Dockerfile "
                                      "(required), e.g. us-docker.pkg.dev/PROJECT/REPO/bert-tfx-pipeline:TAG")
    comp.add_argument("--beam_arg", action="append", help="Beam pipeline argument, e.g. --runner=DataflowRunner")
    comp.add_argument("--local_run", action="store_true",
                      help="a spec for `bertpipe run-spec` on this machine: --pipeline_root may be a local directory")
    comp.add_argument("--retrain", action="store_true",
                      help="the retraining pipeline: warm start from, and comparison with, the latest blessed "
                           "model (its resolver runs in the spec)")
    vertex = comp.add_argument_group(
        "Trainer on Vertex AI training (any of these runs the Trainer as a Vertex AI CustomJob)")
    vertex.add_argument("--trainer_machine_type", help="machine type, e.g. n1-standard-16, a2-highgpu-8g "
                                                       "(default n1-standard-8; implied by --trainer_tpu)")
    vertex.add_argument("--trainer_gpu", help="Vertex AI GPU name, e.g. NVIDIA_TESLA_A100, NVIDIA_L4, NVIDIA_TESLA_T4")
    vertex.add_argument("--trainer_gpu_count", type=int, help="GPUs per machine (default: what the machine carries)")
    vertex.add_argument("--trainer_tpu", help="TPU VM: v5e (= v5e-4), v5e-1, v5e-8, v3-8, v2-8, or "
                                              "Vertex's TPU_V5_LITEPOD / TPU_V3 / TPU_V2")
    vertex.add_argument("--trainer_workers", type=int,
                        help="machines in all, chief included (default 1); >1 trains with MultiWorkerMirroredStrategy")
    vertex.add_argument("--trainer_image", help="the training job's image (default --image; a TPU needs one built "
                                                "from kubeflow/Dockerfile.tpu)")
    vertex.add_argument("--region", help="Vertex AI region of the training job, e.g. us-central1")
    vertex.add_argument("--project", help="Google Cloud project of the training job")
    vertex.add_argument("--service_account", help="the service account the pipeline runs as (give `bertpipe submit` "
                                                  "the same): the training job runs as it too, not as Vertex AI's "
                                                  "Custom Code Service Agent")
    registry = comp.add_argument_group("Vertex AI Model Registry (needs --project and --region)")
    registry.add_argument("--registry_model", metavar="NAME",
                          help="upload each blessed, pushed model as a new version of the Model NAME (created on "
                               "first use) and move its alias 'blessed' to it; labels: run, span, code_version")
    registry.add_argument("--registry_serving_image",
                          help="serving container of the registered versions (default: Vertex AI's prebuilt "
                               "TensorFlow image, us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest, from "
                               "the europe/asia registry for those regions)")
    phase2_vertex = comp.add_argument_group(
        "phase 2's Trainer on Vertex AI (default: phase 1's machine); the --trainer_* flags' meanings")
    for name, help_text in PHASE2_TRAINER_FLAGS.items():
        phase2_vertex.add_argument(f"--phase2_trainer_{name}", type=int if name in ("gpu_count", "workers") else str,
                                   help=help_text)
    steps = comp.add_argument_group("other steps' containers (KFP resource limits)")
    steps.add_argument("--step_cpu", type=float, help="CPU limit of each step's container, e.g. 8")
    steps.add_argument("--step_memory_gb", type=float, help="memory limit of each step's container in GB, e.g. 32")
    comp.set_defaults(func=cmd_compile)

    run_spec = sub.add_parser("run-spec", help="run a compiled spec locally, as Vertex AI would", description=(
        "Walk a compiled PipelineJob's DAG and run each task's container command (TFX's entrypoint) in a "
        "subprocess with this Python, importers and resolvers as Vertex AI's orchestrator does, recording "
        "executions and artifacts in a local ML-metadata store."))
    run_spec.add_argument("spec", help="the PipelineJob JSON written by `bertpipe compile`")
    run_spec.add_argument("--pipeline_root", help="local directory for task outputs and logs "
                                                  "(default: the spec's pipeline root, if local)")
    run_spec.add_argument("--metadata_path", required=True, help="SQLite ML-metadata store (created if missing)")
    run_spec.add_argument("--parameter", action="append", metavar="NAME=VALUE",
                          help="override a runtime parameter of the job (repeatable)")
    run_spec.set_defaults(func=cmd_run_spec)

    sub_ = sub.add_parser("submit", help="submit a compiled spec to Vertex AI Pipelines", description=(
        "Submit the PipelineJob JSON of `bertpipe compile` with google-cloud-aiplatform's PipelineJob, print "
        "the run's console link and, with --wait, its final state, the Evaluator's metrics, the blessing and "
        "the push destination (exit 1 if the run did not succeed). Uses Application Default Credentials."))
    sub_.add_argument("spec", help="the PipelineJob JSON `bertpipe compile` wrote")
    sub_.add_argument("--project", required=True, help="Google Cloud project to run in")
    sub_.add_argument("--region", required=True, help="Vertex AI region, e.g. us-central1")
    sub_.add_argument("--pipeline_root", help="gs:// root of the run's artifacts (default: the spec's)")
    sub_.add_argument("--service_account", help="service account the run acts as")
    sub_.add_argument("--network", help="VPC network to peer with, projects/NUMBER/global/networks/NAME")
    sub_.add_argument("--enable_caching", type=parse_bool, help="true/false: reuse unchanged steps' outputs "
                                                                "(default: as compiled)")
    sub_.add_argument("--label", action="extend", nargs="+", metavar="KEY=VALUE",
                      help="labels of the run (several after one flag, or the flag repeated)")
    sub_.add_argument("--encryption_key", help="Cloud KMS key (CMEK) for the run's resources")
    sub_.add_argument("--parameter", action="extend", nargs="+", metavar="NAME=VALUE",
                      help="runtime parameters (several after one flag, or the flag repeated)")
    sub_.add_argument("--display_name", help="the run's display name (default: the pipeline's name)")
    sub_.add_argument("--if_new_span", action="store_true",
                      help="a retraining spec: submit only if its data pattern (on Cloud Storage) has a span newer "
                           "than the latest blessed model's in Vertex ML Metadata (or none is blessed yet); "
                           "otherwise print why and exit 0 without creating a job")
    sub_.add_argument("--force", action="store_true", help="with --if_new_span: submit even if no new span arrived")
    sub_.add_argument("--wait", action="store_true", help="wait for the run to end and print what it produced")
    sub_.add_argument("--summary_file", help="with --wait: append a Markdown summary here "
                                             "(e.g. $GITHUB_STEP_SUMMARY)")
    sub_.set_defaults(func=cmd_submit)

    version = sub.add_parser("code-version", help="the code version runs record, or the tag of its image",
                             description="Print this checkout's code version (package version, git commit, hash of "
                                         "the sources) as runs and compiled specs record it.")
    version.add_argument("--image_tag", action="store_true",
                         help="print instead the tag of this code's image: a hash of the sources and of what "
                              "kubeflow/Dockerfile copies (the CI workflow builds an image only for a new tag)")
    version.set_defaults(func=cmd_code_version)

    register_data_commands(sub)
    register_lineage_commands(sub)
    return parser


def configure_logging() -> None:
    """The project's own progress lines (training steps, data stats) at INFO on stderr;
    TFX, Beam and TensorFlow stay at their defaults (warnings)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.bertpipe_cli = True  # so that tests can tell it from their own
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
    from pipeline import entry_point  # the console script's path: quiet first (this module's imports are done)

    sys.exit(entry_point.main())
