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

from components.lineage.store import MySQLTarget
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


def mysql_connection_config(target: MySQLTarget):
    """TFX's MySQL ConnectionConfig for `target` (its helper has no socket argument: set after)."""
    config = tfx.orchestration.metadata.mysql_metadata_connection_config(
        host=target.host, port=target.port, database=target.database, username=target.user,
        password=target.password)
    if target.socket:
        config.mysql.ClearField("host")
        config.mysql.ClearField("port")
        config.mysql.socket = target.socket
    return config


def run_local(config: PipelineConfig, paths: LocalPaths, beam_pipeline_args: Optional[list[str]] = None,
              enable_cache: bool = False, mysql: Optional[MySQLTarget] = None):
    """Runs the whole pipeline and returns where its outputs are and the evaluation's metrics.

    mysql: keep ML-metadata in this MySQL/MariaDB database instead of paths.metadata_path. The
      run summary then says where the metadata went (`bertpipe lineage runs` with the same
      flags reads it), since the summary reads SQLite.
    """
    config.validate()
    if config.examples_dir and not os.path.isdir(config.examples_dir):
        raise ValueError(f"--examples {config.examples_dir} is not a directory of TFRecord files.")
    if mysql is None:
        os.makedirs(os.path.dirname(paths.metadata_path), exist_ok=True)
        connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(paths.metadata_path)
    else:
        connection = mysql_connection_config(mysql)
        _check_mysql_reachable(connection, mysql)
    pipeline = create_pipeline(
        config, bert_config_dict(config), pipeline_root=paths.pipeline_root,
        serving_model_dir=paths.serving_model_dir,
        metadata_connection_config=connection,
        beam_pipeline_args=beam_pipeline_args if beam_pipeline_args is not None else default_beam_args(1),
        examples_presplit=examples_are_presplit(config.examples_dir) if config.examples_dir else True,
        enable_cache=enable_cache, code_version=code_version.current().to_dict())
    tfx.orchestration.LocalDagRunner().run(pipeline)
    if mysql is not None:
        return (f"Pipeline {config.pipeline_name!r} finished; its metadata is in {mysql.describe()}. "
                "`bertpipe lineage runs` with the same --metadata_mysql_* flags shows the run.")
    return run_summary.summarize(paths.metadata_path, config.pipeline_name)


def _check_mysql_reachable(connection, target: MySQLTarget) -> None:
    """Fails before any step runs when the MySQL store cannot be opened (a one-line reason)."""
    from components.lineage.store import connect

    connect(connection, target.describe())
