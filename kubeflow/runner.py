"""Compiles the pipeline for Vertex AI Pipelines with KubeflowV2DagRunner.

The spec's components run in one container image that has this project installed
(kubeflow/Dockerfile); the run_fn and the custom components are found by their Python
paths inside it. Vertex AI keeps ML-metadata itself, so no connection config is set.

Everything Vertex AI would reject later is checked here, before a spec is written: the
image names, gs:// locations, and the Trainer's machine spec (pipeline/vertex_resources.py)
against the batch size it must split.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

from tfx import v1 as tfx

from kubeflow import code_check
from pipeline.names import check_gcs_uri, check_image
from pipeline.vertex_resources import TrainerResources, VertexResources
from pipeline import code_version as code_version_lib
from pipeline.config import DEFAULT_CORPUS, PipelineConfig, bert_config_dict
from pipeline.phases import phase2_training
from pipeline.pipeline import create_pipeline
from components.trainer.params import TrainingConfig

# Where kubeflow/Dockerfile puts the repository: the shipped corpus inside the image.
IMAGE_REPO_ROOT = "/pipeline"
IMAGE_DEFAULT_CORPUS = f"{IMAGE_REPO_ROOT}/data/corpus/*.txt"


def compile_pipeline(config: PipelineConfig, pipeline_root: str, output_path: str, image: str,
                     serving_model_dir: Optional[str] = None, beam_pipeline_args: Optional[list[str]] = None,
                     examples_presplit: bool = True, code_version: Optional[dict] = None,
                     retraining: bool = False, vertex_resources: Optional[VertexResources] = None,
                     local_run: bool = False, model_registry: Optional[dict] = None) -> str:
    """Writes the PipelineSpec / PipelineJob JSON to `output_path` (temp file, then rename).

    The spec uses pipeline spec schema 2.1: with 2.0, TFX's container entrypoint reads exec
    properties only from the ExecutorInput's deprecated `parameters` field and ignores the
    `parameterValues` that Vertex AI (and `bertpipe run-spec`) fill in.

    Args:
      code_version: the CodeVersion dict recorded with the model and keyed on by Vertex AI's
        cache (default: this checkout's, `pipeline.code_version.current()`).
      retraining: the retraining pipeline (create_pipeline's switch): the latest blessed model
        resolver's tasks are in the spec, feeding the Trainer's base_model and the Evaluator's
        baseline_model.
      vertex_resources: the Trainer's Vertex AI machine spec and the other steps' limits
        (None: every step runs in a pipeline task on Vertex AI's default machine).
      local_run: the spec is for `bertpipe run-spec` on this machine, so a local pipeline root
        and serving directory are allowed (Vertex AI itself needs gs://).
      model_registry: a RegistryTarget dict (components/pusher/model_registry.py): the Pusher
        also uploads a blessed model to Vertex AI Model Registry.

    Returns:
      output_path.

    Raises:
      ValueError: a name Vertex AI would reject, or a Trainer the batch sizes do not fit.
    """
    config.validate()
    check_image("--image", image)
    if local_run:
        if not pipeline_root:
            raise ValueError("--pipeline_root is missing: give the local directory run-spec will write to.")
    else:
        check_gcs_uri("--pipeline_root", pipeline_root)
        if serving_model_dir:
            check_gcs_uri("--serving_dir", serving_model_dir)
    trainer = vertex_resources.trainer if vertex_resources else None
    if trainer is not None:
        _check_batch_split(config.training, trainer)
    _check_phase2_machine(config, vertex_resources)
    if trainer is not None:
        if trainer.is_tpu and not config.training.use_tpu:
            # The model is built for the TPU (one-hot embedding lookups) when use_tpu is set.
            config = config.replace(training=dataclasses.replace(config.training, use_tpu=True))
    if config.corpus_pattern == DEFAULT_CORPUS and not local_run:
        # The local checkout's path means nothing in the container; the image ships the corpus.
        # (A --local_run spec runs here, where the checkout's corpus is.)
        config = config.replace(corpus_pattern=IMAGE_DEFAULT_CORPUS)
    serving_model_dir = serving_model_dir or f"{pipeline_root.rstrip('/')}/serving_model"
    code_version = code_version or code_version_lib.current().to_dict()
    if model_registry:
        # The registered versions' code_version label: the code this spec was compiled from.
        model_registry = {**model_registry,
                          "code_version": code_version.get("git_commit") or code_version.get("source_hash") or ""}
    pipeline = create_pipeline(config, bert_config_dict(config), pipeline_root=pipeline_root,
                               serving_model_dir=serving_model_dir, metadata_connection_config=None,
                               beam_pipeline_args=beam_pipeline_args, examples_presplit=examples_presplit,
                               code_version=code_version,
                               retraining=retraining, vertex_resources=vertex_resources,
                               model_registry=model_registry)
    output_path = os.path.abspath(output_path)
    output_dir, filename = os.path.split(output_path)
    os.makedirs(output_dir, exist_ok=True)
    staging = f".{filename}.partial"
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image,
                                                                         use_pipeline_spec_2_1=True),
        output_dir=output_dir, output_filename=staging)
    runner.run(pipeline, write_out=True)
    staging_path = os.path.join(output_dir, staging)
    with open(staging_path, encoding="utf-8") as f:
        job = json.load(f)
    mark_resolver_inputs_optional(job)
    # Each task's container checks at start that the image holds the code this spec records.
    code_check.wrap_commands(job, code_version)
    with open(staging_path, "w", encoding="utf-8") as f:
        json.dump(job, f, indent=2, sort_keys=True)
    os.replace(staging_path, output_path)
    return output_path


def mark_resolver_inputs_optional(job: dict) -> list[tuple[str, str]]:
    """Marks `isOptional` every input artifact that a resolver task feeds; returns the
    (component, input) pairs it marked.

    A resolver may find nothing: on the first retraining run there is no blessed model, so
    the Trainer's base_model, the Evaluator's baseline_model and the model resolver's
    `input` (the blessing) are empty. The pipeline spec treats an input artifact without
    `isOptional` as required, and TFX 1.16's Kubeflow V2 compiler sets it on none (KFP's own
    compiler sets it for `Optional[Input[...]] = None`), so the spec says what the executors
    already accept: TFX's Trainer and Evaluator run without base_model / baseline_model.
    """
    spec = job["pipelineSpec"]
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    components = spec["components"]

    def is_resolver(task_name: str) -> bool:
        component = components[spec["root"]["dag"]["tasks"][task_name]["componentRef"]["name"]]
        return "resolver" in executors.get(component.get("executorLabel", ""), {})

    marked = []
    for task in spec["root"]["dag"]["tasks"].values():
        definitions = components[task["componentRef"]["name"]].get("inputDefinitions", {}).get("artifacts", {})
        for key, source in task.get("inputs", {}).get("artifacts", {}).items():
            producer = source.get("taskOutputArtifact", {}).get("producerTask")
            if producer and is_resolver(producer) and key in definitions:
                definitions[key]["isOptional"] = True
                marked.append((task["componentRef"]["name"], key))
    return sorted(marked)


def _check_phase2_machine(config: PipelineConfig, vertex_resources: Optional[VertexResources]) -> None:
    """Phase 2's machine (its own, or phase 1's) against phase 2's batch sizes; refuses
    --phase2_trainer_* without a phase 2, and a TPU in one phase only (use_tpu, which builds
    the model for the TPU, is one setting for both phases)."""
    own = vertex_resources.phase2_trainer if vertex_resources else None
    if own is not None and config.phase2 is None:
        raise ValueError("--phase2_trainer_* given without a phase 2: add --phase2_max_seq_length (and the other "
                         "--phase2_* settings), or drop the --phase2_trainer_* flags.")
    if config.phase2 is None or vertex_resources is None:
        return
    machine = own or vertex_resources.trainer
    if machine is None:
        return
    phase1_tpu = bool(vertex_resources.trainer and vertex_resources.trainer.is_tpu)
    if own is not None and own.is_tpu != phase1_tpu:
        raise ValueError("--phase2_trainer_tpu and --trainer_tpu must be given together: both phases train on TPUs "
                         "or neither does (the model is built for the TPU in both).")
    batch_flag = "--phase2_train_batch_size" if config.phase2.train_batch_size is not None else "--train_batch_size"
    _check_batch_split(phase2_training(config.training, config.phase2), machine, "phase 2's Trainer",
                       {"train_batch_size": batch_flag})


def _check_batch_split(training: TrainingConfig, trainer: TrainerResources, whose: str = "the Trainer",
                       flags: Optional[dict] = None) -> None:
    """Batch sizes are global: they must split evenly over the job's replicas (every GPU or
    TPU core of every worker), or run_fn would refuse them only once the job is running.

    whose, flags: the Trainer and the flag names the error gives (default --<field>)."""
    per_machine = trainer.accelerator_count if trainer.accelerator_type else 1
    replicas = per_machine * trainer.worker_count
    for flag in ("train_batch_size", "eval_batch_size"):
        value = getattr(training, flag)
        if value % replicas:
            name = (flags or {}).get(flag, f"--{flag}")
            raise ValueError(f"{name} {value} does not split over {whose}'s {replicas} replicas "
                             f"({trainer.worker_count} machine(s) x {per_machine} {trainer.accelerator_type or 'CPU'}); "
                             f"use a multiple of {replicas}.")
