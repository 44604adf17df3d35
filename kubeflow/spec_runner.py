"""Runs a compiled Vertex AI PipelineJob here, as Vertex AI's orchestrator would, minus containers.

Task by task in dependency order:
  - container tasks: build the ExecutorInput (kubeflow/executor_input.py), run the
    container's command and arguments from the spec (TFX's Kubeflow V2 entrypoint) in a
    subprocess with this interpreter and the environment's PYTHONPATH, then read the
    ExecutorOutput back. A `lifecycle.preCacheCheck` (FileBasedExampleGen's driver) runs
    first, and its output joins the executor's input;
  - importer tasks (no container): the orchestrator makes the artifact from the spec's URI,
    or reuses a LIVE one with that URI and type unless `reimport` is set;
  - resolver tasks (no container): their artifact filters are answered from the metadata
    store (kubeflow/metadata_queries.py) with the latest matching artifact (`latest`); an
    empty answer leaves the downstream input out if the consumer declares it `isOptional`
    (kubeflow/runner.py marks every resolver-fed input so), and fails the consumer
    otherwise, as the spec states it.
Every task's execution, artifacts and events go into a local ML-metadata store that plays
Vertex ML Metadata (kubeflow/local_metadata.py). Tasks run one at a time; there is no
cache (each run executes every task). It never calls TFX's LocalDagRunner.

Layout under the pipeline root: `<job name>/<task>_<execution id>/` holds the task's
outputs (one directory per output key), `executor_output.json` and `task.log` (the
subprocess's stdout and stderr).
"""
from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import re
import subprocess
import sys
import time
from typing import Mapping, Optional

from google.protobuf import json_format, struct_pb2
from kfp.local import placeholder_utils
from kfp.pipeline_spec import pipeline_spec_pb2
from ml_metadata.proto import metadata_store_pb2

from kubeflow import executor_input as executor_input_lib
from kubeflow import local_metadata
from kubeflow import pipeline_job as pipeline_job_lib

logger = logging.getLogger(__name__)

LOG_FILE = "task.log"
DRIVER_OUTPUT_FILE = "driver_output.json"
PUSHER_TASK = "Pusher"  # create_pipeline's Pusher: the task whose output the summary starts from
_INPUT_ARTIFACT_PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.artifacts\['([^']+)'\]")


class TaskFailed(ValueError):
    """A task of the job failed; the message names the task and its log file."""


@dataclasses.dataclass(frozen=True)
class TaskResult:
    name: str
    kind: str  # container, importer or resolver
    execution_id: int
    outputs: dict[str, list[pipeline_spec_pb2.RuntimeArtifact]]
    seconds: float
    log_file: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class JobResult:
    job_name: str
    pipeline_name: str
    pipeline_root: str
    metadata_path: str
    tasks: list[TaskResult]

    def render(self) -> str:
        lines = [f"Pipeline job {self.job_name} ({self.pipeline_name}) finished: {len(self.tasks)} tasks.",
                 f"  metadata store:   {self.metadata_path}",
                 f"  task outputs:     {os.path.join(self.pipeline_root, self.job_name)}"]
        width = max(len(task.name) for task in self.tasks)
        for task in self.tasks:
            outputs = ", ".join(f"{key}={len(artifacts)}" for key, artifacts in sorted(task.outputs.items()))
            lines.append(f"  {task.name:<{width}}  {task.kind:<9} {task.seconds:7.1f} s   {outputs}")
        return "\n".join(lines)


def new_job_name(pipeline_name: str, now: Optional[datetime.datetime] = None) -> str:
    """`<pipeline>-<UTC timestamp>`, as Vertex AI names a job submitted without a job id."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f"{pipeline_name}-{now:%Y%m%d%H%M%S%f}"


class SpecRunner:
    """Runs one PipelineJob once against a local pipeline root and metadata store."""

    def __init__(self, job: pipeline_job_lib.PipelineJob, pipeline_root: str, metadata_path: str,
                 parameter_overrides: Optional[Mapping[str, str]] = None, job_name: Optional[str] = None,
                 python: Optional[str] = None):
        self.job = job
        self.pipeline_root = os.path.abspath(pipeline_root)
        self.metadata_path = os.path.abspath(metadata_path)
        self.parameters = pipeline_job_lib.pipeline_parameters(job, parameter_overrides or {})
        self.job_name = job_name or new_job_name(job.pipeline_name)
        self.python = python or sys.executable
        self.produced: dict[tuple[str, str], list[pipeline_spec_pb2.RuntimeArtifact]] = {}
        self.produced_parameters: dict[tuple[str, str], struct_pb2.Value] = {}
        self.metadata: Optional[local_metadata.LocalVertexMetadata] = None

    def run(self) -> JobResult:
        order = pipeline_job_lib.task_order(self.job)  # Checks the DAG before anything runs.
        for name in order:
            _check_supported(self.job, name)
        self.metadata = local_metadata.LocalVertexMetadata(
            local_metadata.open_store(self.metadata_path), self.job.pipeline_name, self.job_name)
        results = []
        for index, name in enumerate(order, 1):
            logger.info("[%d/%d] %s ...", index, len(order), name)
            result = self._run_task(name)
            logger.info("[%d/%d] %s done in %.1f s", index, len(order), name, result.seconds)
            results.append(result)
        return JobResult(job_name=self.job_name, pipeline_name=self.job.pipeline_name,
                         pipeline_root=self.pipeline_root, metadata_path=self.metadata_path, tasks=results)

    # --- one task ----------------------------------------------------------------------
    def _run_task(self, name: str) -> TaskResult:
        started = time.monotonic()
        task = self.job.tasks[name]
        executor = self.job.executor(name)
        parameters = executor_input_lib.resolve_parameters(name, task, self.parameters, self.produced_parameters)
        inputs = executor_input_lib.resolve_artifacts(name, task, self.produced, self.job.component(name))
        kind = executor.WhichOneof("spec")
        execution_type = {"container": local_metadata.CONTAINER_EXECUTION_TYPE,
                          "importer": local_metadata.IMPORTER_EXECUTION_TYPE,
                          "resolver": local_metadata.RESOLVER_EXECUTION_TYPE}[kind]
        execution = self.metadata.start_execution(execution_type, name, parameters, inputs)
        task_root = os.path.join(self.pipeline_root, self.job_name, f"{name}_{execution.id}")
        log_file = None
        try:
            if kind == "container":
                log_file = os.path.join(task_root, LOG_FILE)
                outputs = self._run_container(name, execution, executor.container, parameters, inputs, task_root)
            elif kind == "importer":
                outputs = self._run_importer(name, execution, executor.importer, parameters)
            else:
                outputs = self._run_resolver(name, execution, executor.resolver, parameters, inputs, task_root)
        except TaskFailed:
            raise  # Recorded as FAILED, with its log file, where the subprocess failed.
        except KeyboardInterrupt:
            self.metadata.finish_execution(execution, {}, state=metadata_store_pb2.Execution.CANCELED)
            raise
        except Exception:
            # An importer or resolver that cannot be answered (e.g. an unsupported filter):
            # the store must not keep the execution RUNNING.
            self.metadata.finish_execution(execution, {}, state=metadata_store_pb2.Execution.FAILED)
            raise
        for key, artifacts in outputs.items():
            self.produced[(name, key)] = artifacts
        return TaskResult(name=name, kind=kind, execution_id=execution.id, outputs=outputs,
                          seconds=time.monotonic() - started, log_file=log_file)

    def _run_container(self, name, execution, container, parameters, inputs, task_root):
        component = self.job.component(name)
        os.makedirs(task_root, exist_ok=True)
        executor_input = executor_input_lib.build(component, parameters, inputs, task_root, self.job_name, name)
        log_file = os.path.join(task_root, LOG_FILE)
        recorded = {"log_file": log_file}
        if container.lifecycle.HasField("pre_cache_check"):
            hook = container.lifecycle.pre_cache_check
            self._subprocess(name, execution, hook.command, hook.args, executor_input, component, log_file,
                             step="preCacheCheck driver")
            # The executor reads an existing output file as a driver's output; the driver's
            # output is folded into its input instead, and kept beside it for inspection.
            output_file = executor_input.outputs.output_file
            if not os.path.exists(output_file):
                self.metadata.finish_execution(execution, {}, state=metadata_store_pb2.Execution.FAILED,
                                               properties={"log_file": log_file})
                raise TaskFailed(f"task {name} failed (its preCacheCheck driver wrote no {output_file}); "
                                 f"its log: {log_file}")
            driver_output = executor_input_lib.read_executor_output(output_file)
            os.replace(output_file, os.path.join(task_root, DRIVER_OUTPUT_FILE))
            executor_input_lib.apply_driver_output(executor_input, driver_output, component)
            # Vertex AI updates the execution with the driver's parameters (span, fingerprint).
            recorded.update({f"input:{key}": json_format.MessageToDict(value)
                             for key, value in driver_output.parameter_values.items()})
        self._subprocess(name, execution, container.command, container.args, executor_input, component, log_file,
                         step="executor")
        executor_output = executor_input_lib.read_executor_output(executor_input.outputs.output_file)
        outputs = executor_input_lib.outputs_after_run(executor_input, executor_output, component)
        for key, value in executor_output.parameter_values.items():
            self.produced_parameters[(name, key)] = value
        self.metadata.finish_execution(execution, outputs, properties=recorded)
        return outputs

    def _subprocess(self, name, execution, command, args, executor_input, component, log_file, step):
        input_dict = executor_input_lib.as_dict(executor_input, component)
        argv = executor_input_lib.command_line(name, command, args, input_dict, self.job_name,
                                               self.pipeline_root, python=self.python)
        with open(log_file, "a", encoding="utf-8") as log:
            log.write(f"=== {step}: {' '.join(argv[:4])} ...\n")
            log.flush()
            status = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
                                    check=False).returncode
        if status != 0:
            self.metadata.finish_execution(execution, {}, state=metadata_store_pb2.Execution.FAILED,
                                           properties={"log_file": log_file})
            raise TaskFailed(f"task {name} failed ({step} exited with status {status}); "
                             f"its log: {log_file}")

    def _run_importer(self, name, execution, importer, parameters):
        component = self.job.component(name)
        [output_key] = component.output_definitions.artifacts
        if importer.artifact_uri.HasField("constant"):
            uri = importer.artifact_uri.constant.string_value
        elif importer.artifact_uri.runtime_parameter:
            parameter = importer.artifact_uri.runtime_parameter
            if parameter not in parameters:
                raise ValueError(f"Importer task {name} takes its URI from parameter {parameter!r}, "
                                 f"which has no value.")
            uri = parameters[parameter].string_value
        else:
            raise ValueError(f"Importer task {name} has no artifact URI in the spec.")
        title = local_metadata.schema_title(importer.type_schema)
        reused = None if importer.reimport else latest(self.metadata.find_by_uri(title, uri))
        if reused is not None:
            artifact = local_metadata.runtime_artifact(reused, importer.type_schema)
            event_type = metadata_store_pb2.Event.INTERNAL_OUTPUT
        else:
            artifact = pipeline_spec_pb2.RuntimeArtifact(
                name=executor_input_lib.output_artifact_name(self.job_name, name, output_key), uri=uri)
            artifact.type.CopyFrom(importer.type_schema)
            artifact.metadata.CopyFrom(importer.metadata)
            event_type = metadata_store_pb2.Event.OUTPUT
        outputs = {output_key: [artifact]}
        self.metadata.finish_execution(execution, outputs, event_type=event_type)
        return outputs

    def _run_resolver(self, name, execution, resolver, parameters, inputs, task_root):
        component = self.job.component(name)
        input_dict = json_format.MessageToDict(
            executor_input_lib.build(component, parameters, inputs, task_root, self.job_name, name))
        outputs = {}
        for key, query in resolver.output_artifact_queries.items():
            referenced = set(_INPUT_ARTIFACT_PLACEHOLDER.findall(query.filter))
            if referenced - set(inputs):
                # The filter depends on an input that is empty (nothing upstream was found).
                outputs[key] = []
                continue
            text = placeholder_utils.resolve_io_placeholders(input_dict, query.filter)
            try:
                found = self.metadata.find_artifacts(text)
            except ValueError as e:
                raise ValueError(f"Resolver task {name}, output {key!r}: {e}") from None
            type_schema = component.output_definitions.artifacts[key].artifact_type
            chosen = latest(found)
            outputs[key] = [local_metadata.runtime_artifact(chosen, type_schema)] if chosen is not None else []
            logger.info("  %s: %s -> %s", key, text, chosen.name if chosen is not None else "(nothing)")
        self.metadata.finish_execution(execution, outputs, event_type=metadata_store_pb2.Event.INTERNAL_OUTPUT)
        return outputs


def latest(artifacts: list[metadata_store_pb2.Artifact]) -> Optional[metadata_store_pb2.Artifact]:
    """The artifact created last (creation time, then id: MLMD's ids grow with creation), or None.

    What a resolver task answers with: the blessing resolver's filter matches every blessed
    ModelBlessing of the pipeline, and the latest one names the latest blessed model, as
    TFX's LatestBlessedModelStrategy resolves it (the newest Model that has a blessed
    ModelBlessing). Chosen here, not taken from the query's order, so that the answer does
    not depend on how the query happens to sort.
    """
    return max(artifacts, key=lambda a: (a.create_time_since_epoch, a.id), default=None)


def _check_supported(job: pipeline_job_lib.PipelineJob, name: str) -> None:
    task = job.tasks[name]
    if task.trigger_policy.condition:
        raise ValueError(f"{job.path}: task {name} has a trigger condition, which run-spec does not support.")
    if job.component(name).WhichOneof("implementation") == "dag":
        raise ValueError(f"{job.path}: task {name} is a sub-DAG, which run-spec does not support.")
    kind = job.executor(name).WhichOneof("spec")
    if kind not in ("container", "importer", "resolver"):
        raise ValueError(f"{job.path}: task {name} has a {kind} executor, which run-spec does not support.")


def summarize(result: JobResult):
    """What the job produced, as `bertpipe run` reports it (pipeline/run_summary.py, which
    follows the job's own executions in the store: its Pusher's pushed model, the model and
    blessing that Pusher read, their Evaluator's evaluation); None for a spec without a
    Pusher task (nothing to report on)."""
    if not any(task.name == PUSHER_TASK for task in result.tasks):
        return None
    from pipeline import run_summary  # Deferred: TFMA's reader.

    return run_summary.summarize(run_summary.sqlite_readonly(result.metadata_path), result.pipeline_name,
                                 result.job_name, metadata_path=result.metadata_path)


def run_spec(spec_path: str, pipeline_root: Optional[str], metadata_path: str,
             parameter_overrides: Optional[Mapping[str, str]] = None) -> JobResult:
    """Loads the PipelineJob at `spec_path` and runs it (see the module docstring).

    Args:
      spec_path: a PipelineJob JSON from `bertpipe compile` (pipeline spec schema 2.1).
      pipeline_root: where task outputs go; None means the spec's gcsOutputDirectory,
        which must then be a local path.
      metadata_path: the SQLite ML-metadata store (created if missing).
      parameter_overrides: runtime parameters, name -> text.

    Raises:
      ValueError: a bad spec, root or parameter; TaskFailed (a ValueError) when a task fails.
    """
    job = pipeline_job_lib.load(spec_path)
    compiled_root = job.runtime_config.gcs_output_directory
    if pipeline_root is None:
        if not compiled_root or "://" in compiled_root:
            raise ValueError(f"{spec_path} was compiled for the pipeline root {compiled_root or '(none)'}, which is "
                             f"not a local path: give --pipeline_root DIR (and compile with --local_run and a local "
                             f"--pipeline_root, since the spec's records, checkpoints and serving paths live there).")
        pipeline_root = compiled_root
    runner = SpecRunner(job, pipeline_root, metadata_path, parameter_overrides)
    return runner.run()
