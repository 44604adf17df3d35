"""Runs the pipeline on this machine: LocalDagRunner, ML-metadata in SQLite, Beam DirectRunner.

Only this module (and the CLI that calls it) knows the local paths:
  <output_dir>/tfx_root/          pipeline root (artifacts, records, checkpoints)
  <output_dir>/metadata.sqlite    the ML-metadata store
  <output_dir>/serving_model/     where the Pusher publishes blessed models
"""
from __future__ import annotations

import datetime
import os
from typing import Optional

from tfx import v1 as tfx
from tfx.dsl.compiler import compiler
from tfx.dsl.compiler import constants as compiler_constants
from tfx.orchestration.portable import runtime_parameter_utils

from components import beam_data_plane
from components.lineage import store as store_lib
from components.lineage.store import MySQLTarget
from components.pretraining_data import spans
from pipeline import code_version, input_checks, interrupted_runs, private_tmp, run_lock
from pipeline.config import REPO_ROOT, PipelineConfig, bert_config_dict
from pipeline.local_paths import LocalPaths, locked_locations
from pipeline.pipeline import create_pipeline
from pipeline import run_summary


def default_beam_args(direct_num_workers: int) -> list[str]:
    """DirectRunner with threads: the data job's heavy steps release the GIL, and threads
    avoid each worker process's TensorFlow import and Beam's shutdown wait."""
    return ["--direct_running_mode=multi_threading", f"--direct_num_workers={direct_num_workers}"] \
        if direct_num_workers > 1 else ["--direct_num_workers=1"]


# Beam flags by which TFX's Beam executor knows the project's dependencies are provided;
# without one it builds an ephemeral sdist of the installed tfx package (~49 MB in $TMPDIR)
# for every Beam component, which a DirectRunner never reads.
_DEPENDENCY_FLAGS = ("--setup_file", "--extra_package", "--requirements_file", "--sdk_container_image",
                     "--worker_harness_container_image")


def with_dependency_flag(beam_pipeline_args: list[str]) -> list[str]:
    """Adds `--setup_file=<this project's setup.py>` unless a dependency flag is already given
    (it is also what Dataflow workers need to get the project's code)."""
    if any(arg.startswith(_DEPENDENCY_FLAGS) for arg in beam_pipeline_args):
        return list(beam_pipeline_args)
    return list(beam_pipeline_args) + [f"--setup_file={os.path.join(REPO_ROOT, 'setup.py')}"]


def new_run_id() -> str:
    """A run id as LocalDagRunner makes them (the start time), chosen here so the caller knows it."""
    return datetime.datetime.now().isoformat()


def run_pipeline(pipeline: tfx.dsl.Pipeline, run_id: str) -> None:
    """LocalDagRunner on `pipeline`, with `run_id` as its pipeline_run context's name.

    LocalDagRunner.run would pick the id itself and not return it; then the only way to
    find the run afterwards is "the newest run in the store", which is another process's
    when runs share a store.
    """
    beam_data_plane.disable_timed_flushes()  # the Beam components run in this process
    ir = compiler.Compiler().compile(pipeline)
    runtime_parameter_utils.substitute_runtime_parameter(
        ir, {compiler_constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id})
    tfx.orchestration.LocalDagRunner().run_with_ir(ir)


def check_data_source(config: PipelineConfig) -> PipelineConfig:
    """Fails early, with the flag's name, on data that is not there. Returns the config as the
    input checks should see it: a {SPAN} pattern replaced by its newest span's."""
    if config.examples_dir:
        if spans.has_span(config.examples_dir):
            config = config.replace(examples_dir=spans.latest_span(config.examples_dir).pattern)
        if not os.path.isdir(config.examples_dir):
            raise ValueError(f"--examples {config.examples_dir} is not a directory of TFRecord files.")
    elif spans.has_span(config.corpus_pattern):
        # Raises, naming the pattern, if nothing matches.
        config = config.replace(corpus_pattern=spans.latest_span(config.corpus_pattern).pattern)
    return config


def run_local(config: PipelineConfig, paths: LocalPaths, beam_pipeline_args: Optional[list[str]] = None,
              enable_cache: bool = False, mysql: Optional[MySQLTarget] = None,
              retraining: bool = False) -> run_summary.RunSummary:
    """Runs the whole pipeline and returns where its outputs are and the evaluation's metrics.

    mysql: keep ML-metadata in this MySQL/MariaDB database instead of paths.metadata_path
      (`bertpipe lineage` with the same flags reads it).
    retraining: warm-start from, and compare with, the latest blessed model (create_pipeline).

    Raises:
      run_lock.RunInProgressError: another run uses the same store or pipeline root.
    """
    config.validate()
    resolved = check_data_source(config)
    input_checks.check_local_run(resolved, paths)
    if mysql is None:
        os.makedirs(os.path.dirname(paths.metadata_path), exist_ok=True)
        connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(paths.metadata_path)
        store_name = paths.metadata_path
    else:
        connection = store_lib.mysql_connection_config(mysql)
        _check_mysql_reachable(connection, mysql)
        store_name = mysql.describe()
    with run_lock.hold(locked_locations(paths, mysql is not None)), private_tmp.private_tmpdir():
        return _run_locked(config, paths, connection, store_name, beam_pipeline_args, enable_cache,
                           examples_presplit=input_checks.examples_are_presplit(resolved.examples_dir)
                           if resolved.examples_dir else True, retraining=retraining)


def _run_locked(config: PipelineConfig, paths: LocalPaths, connection, store_name: str,
                beam_pipeline_args: Optional[list[str]], enable_cache: bool, examples_presplit: bool,
                retraining: bool) -> run_summary.RunSummary:
    beam_args = beam_pipeline_args if beam_pipeline_args is not None else default_beam_args(1)
    interrupted_runs.cancel_unfinished_executions(connection, config.pipeline_name)
    pipeline = create_pipeline(
        config, bert_config_dict(config), pipeline_root=paths.pipeline_root,
        serving_model_dir=paths.serving_model_dir,
        metadata_connection_config=connection,
        beam_pipeline_args=with_dependency_flag(beam_args),
        examples_presplit=examples_presplit, enable_cache=enable_cache,
        code_version=code_version.current().to_dict(), retraining=retraining)
    run_id = new_run_id()
    run_pipeline(pipeline, run_id)
    return run_summary.summarize(connection, config.pipeline_name, run_id, metadata_path=store_name)


def _check_mysql_reachable(connection, target: MySQLTarget) -> None:
    """Fails before any step runs when the MySQL store cannot be opened (a one-line reason)."""
    from components.lineage.store import connect

    connect(connection, target.describe())
