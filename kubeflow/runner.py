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
from pipeline.pipeline import create_pipeline

# Where kubeflow/Dockerfile puts the repository: the shipped corpus inside the image.
IMAGE_REPO_ROOT = "/pipeline"
IMAGE_DEFAULT_CORPUS = f"{IMAGE_REPO_ROOT}/data/corpus/*.txt"


def compile_pipeline(config: PipelineConfig, pipeline_root: str, output_path: str, image: str,
                     serving_model_dir: Optional[str] = None, beam_pipeline_args: Optional[list[str]] = None,
                     examples_presplit: bool = True, code_version: Optional[dict] = None,
                     retraining: bool = False, vertex_resources: Optional[VertexResources] = None,
                     local_run: bool = False) -> str:
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
        _check_batch_split(config, trainer)
        if trainer.is_tpu and not config.training.use_tpu:
            # The model is built for the TPU (one-hot embedding lookups) when use_tpu is set.
            config = config.replace(training=dataclasses.replace(config.training, use_tpu=True))
    if config.corpus_pattern == DEFAULT_CORPUS and not local_run:
        # The local checkout's path means nothing in the container; the image ships the corpus.
        # (A --local_run spec runs here, where the checkout's corpus is.)
        config = config.replace(corpus_pattern=IMAGE_DEFAULT_CORPUS)
    serving_model_dir = serving_model_dir or f"{pipeline_root.rstrip('/')}/serving_model"
    code_version = code_version or code_version_lib.current().to_dict()
    pipeline = create_pipeline(config, bert_config_dict(config), pipeline_root=pipeline_root,
                               serving_model_dir=serving_model_dir, metadata_connection_config=None,
                               beam_pipeline_args=beam_pipeline_args, examples_presplit=examples_presplit,
                               code_version=code_version,
                               retraining=retraining, vertex_resources=vertex_resources)
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
    # Each task's container checks at start that the image holds the code this spec records.
    code_check.wrap_commands(job, code_version)
    with open(staging_path, "w", encoding="utf-8") as f:
        json.dump(job, f, indent=2, sort_keys=True)
    os.replace(staging_path, output_path)
    return output_path


def _check_batch_split(config: PipelineConfig, trainer: TrainerResources) -> None:
    """Batch sizes are global: they must split evenly over the job's replicas (every GPU or
    TPU core of every worker), or run_fn would refuse them only once the job is running."""
    per_machine = trainer.accelerator_count if trainer.accelerator_type else 1
    replicas = per_machine * trainer.worker_count
    for flag in ("train_batch_size", "eval_batch_size"):
        value = getattr(config.training, flag)
        if value % replicas:
            raise ValueError(f"--{flag} {value} does not split over the Trainer's {replicas} replicas "
                             f"({trainer.worker_count} machine(s) x {per_machine} {trainer.accelerator_type or 'CPU'}); "
                             f"use a multiple of {replicas}.")
