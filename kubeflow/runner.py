"""Compiles the pipeline for Vertex AI Pipelines with KubeflowV2DagRunner.

The spec's components run in one container image that has this project installed
(kubeflow/Dockerfile); the run_fn and the custom components are found by their Python
paths inside it. Vertex AI keeps ML-metadata itself, so no connection config is set.
"""
from __future__ import annotations

import os
from typing import Optional

from tfx import v1 as tfx

from pipeline import code_version as code_version_lib
from pipeline.config import DEFAULT_CORPUS, PipelineConfig, bert_config_dict
from pipeline.pipeline import create_pipeline

# Where kubeflow/Dockerfile puts the repository: the shipped corpus inside the image.
IMAGE_REPO_ROOT = "/pipeline"
IMAGE_DEFAULT_CORPUS = f"{IMAGE_REPO_ROOT}/data/corpus/*.txt"


def compile_pipeline(config: PipelineConfig, pipeline_root: str, output_path: str, image: str,
                     serving_model_dir: Optional[str] = None, beam_pipeline_args: Optional[list[str]] = None,
                     examples_presplit: bool = True, code_version: Optional[dict] = None,
                     retraining: bool = False) -> str:
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

    Returns:
      output_path.
    """
    config.validate()
    if config.corpus_pattern == DEFAULT_CORPUS:
        # The local checkout's path means nothing in the container; the image ships the corpus.
        config = config.replace(corpus_pattern=IMAGE_DEFAULT_CORPUS)
    serving_model_dir = serving_model_dir or f"{pipeline_root.rstrip('/')}/serving_model"
    pipeline = create_pipeline(config, bert_config_dict(config), pipeline_root=pipeline_root,
                               serving_model_dir=serving_model_dir, metadata_connection_config=None,
                               beam_pipeline_args=beam_pipeline_args, examples_presplit=examples_presplit,
                               code_version=code_version or code_version_lib.current().to_dict(),
                               retraining=retraining)
    output_path = os.path.abspath(output_path)
    output_dir, filename = os.path.split(output_path)
    os.makedirs(output_dir, exist_ok=True)
    staging = f".{filename}.partial"
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image,
                                                                         use_pipeline_spec_2_1=True),
        output_dir=output_dir, output_filename=staging)
    runner.run(pipeline, write_out=True)
    os.replace(os.path.join(output_dir, staging), output_path)
    return output_path
