"""Reading a compiled PipelineJob JSON: its spec, runtime parameters and task order."""
from __future__ import annotations

import dataclasses
import json
from typing import Mapping

from google.protobuf import json_format, struct_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

SUPPORTED_SCHEMA = "2.1"


@dataclasses.dataclass(frozen=True)
class PipelineJob:
    """The parts of a compiled PipelineJob that running it needs."""

    path: str
    spec: pipeline_spec_pb2.PipelineSpec
    deployment: pipeline_spec_pb2.PipelineDeploymentConfig
    runtime_config: pipeline_spec_pb2.PipelineJob.RuntimeConfig

    @property
    def pipeline_name(self) -> str:
        return self.spec.pipeline_info.name

    @property
    def tasks(self) -> Mapping[str, pipeline_spec_pb2.PipelineTaskSpec]:
        return self.spec.root.dag.tasks

    def component(self, task_name: str) -> pipeline_spec_pb2.ComponentSpec:
        return self.spec.components[self.tasks[task_name].component_ref.name]

    def executor(self, task_name: str) -> pipeline_spec_pb2.PipelineDeploymentConfig.ExecutorSpec:
        return self.deployment.executors[self.component(task_name).executor_label]


def load(path: str) -> PipelineJob:
    """Reads and checks a PipelineJob JSON written by `bertpipe compile`.

    Raises:
      ValueError: unreadable, not a PipelineJob, or not pipeline spec schema 2.1 (with the
        2.0 schema TFX's entrypoint ignores exec properties given as parameter values).
    """
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
        job = json_format.ParseDict(values, pipeline_spec_pb2.PipelineJob(), ignore_unknown_fields=True)
        spec = json_format.ParseDict(json_format.MessageToDict(job.pipeline_spec),
                                     pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=True)
        deployment = json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec),
                                           pipeline_spec_pb2.PipelineDeploymentConfig(),
                                           ignore_unknown_fields=True)
    except (OSError, json.JSONDecodeError, json_format.ParseError) as e:
        raise ValueError(f"Cannot read the pipeline spec {path}: {e}") from e
    if not spec.root.dag.tasks:
        raise ValueError(f"{path} is not a compiled PipelineJob (no pipelineSpec.root.dag.tasks); "
                         f"write one with `bertpipe compile`.")
    if not spec.schema_version.startswith(SUPPORTED_SCHEMA + "."):
        raise ValueError(f"{path} uses pipeline spec schema {spec.schema_version or '(none)'}; run-spec needs "
                         f"{SUPPORTED_SCHEMA} (recompile it with `bertpipe compile`).")
    return PipelineJob(path=path, spec=spec, deployment=deployment, runtime_config=job.runtime_config)


def task_order(job: PipelineJob) -> list[str]:
    """The tasks in an order that runs each after everything it depends on (ties by name).

    Raises:
      ValueError: the DAG has a cycle or a dependency on a task that is not in it.
    """
    upstream = {}
    for name, task in job.tasks.items():
        needs = set(task.dependent_tasks)
        needs |= {a.task_output_artifact.producer_task for a in task.inputs.artifacts.values()
                  if a.WhichOneof("kind") == "task_output_artifact"}
        needs |= {p.task_output_parameter.producer_task for p in task.inputs.parameters.values()
                  if p.WhichOneof("kind") == "task_output_parameter"}
        missing = needs - set(job.tasks)
        if missing:
            raise ValueError(f"{job.path}: task {name} depends on {sorted(missing)}, which the DAG does not have.")
        upstream[name] = needs
    order, done = [], set()
    while len(order) < len(upstream):
        ready = sorted(n for n, needs in upstream.items() if n not in done and needs <= done)
        if not ready:
            raise ValueError(f"{job.path}: the tasks {sorted(set(upstream) - done)} depend on each other in a cycle.")
        order.append(ready[0])
        done.add(ready[0])
    return order


def pipeline_parameters(job: PipelineJob, overrides: Mapping[str, str]) -> dict[str, struct_pb2.Value]:
    """The job's runtime parameters: the root's defaults, then runtimeConfig.parameterValues,
    then `overrides` (name -> text, read according to the parameter's declared type).

    Raises:
      ValueError: an override names no parameter of the pipeline, or its text does not fit.
    """
    declared = job.spec.root.input_definitions.parameters
    values: dict[str, struct_pb2.Value] = {}
    for name, spec in declared.items():
        if spec.HasField("default_value"):
            values[name] = spec.default_value
    for name, value in job.runtime_config.parameter_values.items():
        values[name] = value
    for name, text in overrides.items():
        if name not in declared and name not in values:
            known = sorted(set(declared) | set(values))
            raise ValueError(f"--parameter {name}: the pipeline has no such runtime parameter "
                             f"(it has: {', '.join(known) or 'none'}).")
        kind = declared[name].parameter_type if name in declared else None
        values[name] = _parse_value(name, text, kind)
    return values


def _parse_value(name: str, text: str, kind) -> struct_pb2.Value:
    types = pipeline_spec_pb2.ParameterType
    value = struct_pb2.Value()
    try:
        if kind == types.NUMBER_INTEGER:
            value.number_value = int(text)
        elif kind == types.NUMBER_DOUBLE:
            value.number_value = float(text)
        elif kind == types.BOOLEAN:
            if text.lower() not in ("true", "false"):
                raise ValueError("expected true or false")
            value.bool_value = text.lower() == "true"
        elif kind in (types.LIST, types.STRUCT):
            json_format.ParseDict(json.loads(text), value)
        else:
            value.string_value = text
    except (ValueError, json_format.ParseError) as e:
        raise ValueError(f"--parameter {name}={text}: does not fit the parameter's type "
                         f"{types.ParameterTypeEnum.Name(kind)} ({e}).") from None
    return value
