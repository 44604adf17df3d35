"""Runs the pipeline on this machine: LocalDagRunner, ML-metadata in SQLite, Beam DirectRunner.

Only this module (and the CLI that calls it) knows the local paths:
  <output_dir>/tfx_root/          pipeline root (artifacts, records, checkpoints)
  <output_dir>/metadata.sqlite    the ML-metadata store
  <output_dir>/serving_model/     where the Pusher publishes blessed models
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

from tfx import v1 as tfx

from components.pretraining_data import spans
from pipeline import code_version
from pipeline.config import PipelineConfig, bert_config_dict
from pipeline.pipeline import create_pipeline
from pipeline import run_summary


@dataclasses.dataclass(frozen=True)
class LocalPaths:
    pipeline_root: str
    metadata_path: str
    serving_model_dir: str

    @classmethod
    def under(cls, output_dir: str, pipeline_root: Optional[str] = None, metadata_path: Optional[str] = None,
              serving_model_dir: Optional[str] = None) -> "LocalPaths":
        output_dir = os.path.abspath(output_dir)
        return cls(pipeline_root=os.path.abspath(pipeline_root or os.path.join(output_dir, "tfx_root")),
                   metadata_path=os.path.abspath(metadata_path or os.path.join(output_dir, "metadata.sqlite")),
                   serving_model_dir=os.path.abspath(serving_model_dir or os.path.join(output_dir, "serving_model")))


def examples_are_presplit(examples_dir: str) -> bool:
    """Whether an --examples directory holds train/ and eval/ subdirectories (else one split)."""
    import tensorflow as tf  # Deferred: only this check needs gfile (local or gs://).

    return all(tf.io.gfile.isdir(os.path.join(examples_dir, split)) for split in ("train", "eval"))


def default_beam_args(direct_num_workers: int) -> list[str]:
    """DirectRunner with threads: the data job's heavy steps release the GIL, and threads
    avoid each worker process's TensorFlow import and Beam's shutdown wait."""
    return ["--direct_running_mode=multi_threading", f"--direct_num_workers={direct_num_workers}"] \
        if direct_num_workers > 1 else ["--direct_num_workers=1"]


def check_data_source(config: PipelineConfig) -> Optional[str]:
    """Fails early, with the flag's name, on data that is not there; returns the examples
    directory to inspect (the newest span's, for a {SPAN} pattern) or None."""
    if config.examples_dir:
        directory = spans.latest_span(config.examples_dir).pattern if spans.has_span(config.examples_dir) \
            else config.examples_dir
        if not os.path.isdir(directory):
            raise ValueError(f"--examples {directory} is not a directory of TFRecord files.")
        return directory
    if spans.has_span(config.corpus_pattern):
        spans.latest_span(config.corpus_pattern)  # raises, naming the pattern, if nothing matches
    return None


def run_local(config: PipelineConfig, paths: LocalPaths, beam_pipeline_args: Optional[list[str]] = None,
              enable_cache: bool = False, retraining: bool = False) -> run_summary.RunSummary:
    """Runs the whole pipeline and returns where its outputs are and the evaluation's metrics.

    retraining: warm-start from, and compare with, the latest blessed model (create_pipeline).
    """
    config.validate()
    examples_dir = check_data_source(config)
    os.makedirs(os.path.dirname(paths.metadata_path), exist_ok=True)
    pipeline = create_pipeline(
        config, bert_config_dict(config), pipeline_root=paths.pipeline_root,
        serving_model_dir=paths.serving_model_dir,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            paths.metadata_path),
        beam_pipeline_args=beam_pipeline_args if beam_pipeline_args is not None else default_beam_args(1),
        examples_presplit=examples_are_presplit(examples_dir) if examples_dir else True,
        enable_cache=enable_cache, code_version=code_version.current().to_dict(), retraining=retraining)
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return run_summary.summarize(paths.metadata_path, config.pipeline_name)
