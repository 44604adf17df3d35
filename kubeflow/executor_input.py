"""Builds a compiled task's ExecutorInput and command line, as Vertex AI's orchestrator does.

A container task of a TFX-compiled spec runs

    python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor \
        --executor_class_path ... --json_serialized_invocation_args {{$}} ...

where `{{$}}` is the whole KFP v2 ExecutorInput as JSON: the task's parameter values, its
input artifacts (each with its resource name, type, uri and metadata, the type taken from
the producer's output definitions, since executors hand back no types), and for each output
a fresh artifact (name, type, uri under the task's root) and the file to write the
ExecutorOutput to. kfp 2.5's `kfp.local` builds ExecutorInputs only for tasks without input
artifacts, so this module builds them; its placeholder substitution is reused.
"""
from __future__ import annotations

import os
import sys
from typing import Mapping, Optional, Sequence

from google.protobuf import json_format, struct_pb2
from kfp.local import executor_input_utils, placeholder_utils
from kfp.pipeline_spec import pipeline_spec_pb2

EXECUTOR_OUTPUT_FILE = "executor_output.json"

ArtifactList = list[pipeline_spec_pb2.RuntimeArtifact]
# (producer task, output key) -> the artifacts that output holds after the producer ran.
ProducedArtifacts = Mapping[tuple[str, str], ArtifactList]


def resolve_parameters(task_name: str, task: pipeline_spec_pb2.PipelineTaskSpec,
                       pipeline_parameters: Mapping[str, struct_pb2.Value],
                       produced_parameters: Mapping[tuple[str, str], struct_pb2.Value]
                       ) -> dict[str, struct_pb2.Value]:
    """The task's input parameter values: constants, pipeline parameters, upstream outputs.

    Raises:
      ValueError: a parameter refers to something this run does not have.
    """
    values = {}
    for name, spec in task.inputs.parameters.items():
        kind = spec.WhichOneof("kind")
        if kind == "runtime_value" and spec.runtime_value.HasField("constant"):
            values[name] = spec.runtime_value.constant
        elif kind == "component_input_parameter":
            if spec.component_input_parameter not in pipeline_parameters:
                raise ValueError(f"Task {task_name} needs the pipeline parameter "
                                 f"{spec.component_input_parameter!r}, which has no value: give "
                                 f"--parameter {spec.component_input_parameter}=VALUE.")
            values[name] = pipeline_parameters[spec.component_input_parameter]
        elif kind == "task_output_parameter":
            key = (spec.task_output_parameter.producer_task, spec.task_output_parameter.output_parameter_key)
            if key not in produced_parameters:
                raise ValueError(f"Task {task_name} needs output parameter {key[1]!r} of task {key[0]}, "
                                 f"which did not produce it.")
            values[name] = produced_parameters[key]
        else:
            raise ValueError(f"Task {task_name}: input parameter {name!r} is given as {kind}, which "
                             f"run-spec does not support (spec schema 2.1 constants, pipeline "
                             f"parameters and task outputs are).")
    return values


def resolve_artifacts(task_name: str, task: pipeline_spec_pb2.PipelineTaskSpec,
                      produced: ProducedArtifacts,
                      component: Optional[pipeline_spec_pb2.ComponentSpec] = None) -> dict[str, ArtifactList]:
    """The task's input artifacts from its producers' outputs.

    An empty upstream output (a resolver that found nothing) leaves an input the component
    declares `isOptional` out: the executor sees no such input. A required input (isOptional
    unset) with nothing upstream fails the task before it runs: the spec says the task cannot
    run without it, and KFP's open-source driver has nothing to hand over then ("cannot find
    output artifact"); Vertex AI does not document running such a task.

    Args:
      component: the task's ComponentSpec, whose input definitions say which inputs are
        optional (None: every input is treated as optional).

    Raises:
      ValueError: an input given other than as a task output, an upstream task that has
        not run, or a required input with nothing upstream.
    """
    definitions = component.input_definitions.artifacts if component is not None else None
    artifacts = {}
    for name, spec in task.inputs.artifacts.items():
        if spec.WhichOneof("kind") != "task_output_artifact":
            raise ValueError(f"Task {task_name}: input artifact {name!r} is given as "
                             f"{spec.WhichOneof('kind')}, which run-spec does not support.")
        key = (spec.task_output_artifact.producer_task, spec.task_output_artifact.output_artifact_key)
        if key not in produced:
            raise ValueError(f"Task {task_name} needs output {key[1]!r} of task {key[0]}, which has not run.")
        if produced[key]:
            artifacts[name] = list(produced[key])
        elif definitions is not None and not (name in definitions and definitions[name].is_optional):
            raise ValueError(f"Task {task_name}: its required input artifact {name!r} is empty ({key[0]} output "
                             f"no {key[1]!r}) and the spec does not mark it isOptional. Inputs fed by a resolver must be "
                             f"isOptional in the spec: recompile it with `bertpipe compile`.")
    return artifacts


def output_artifact_name(job_name: str, task_name: str, key: str) -> str:
    """The resource name a task's output gets: unique in the store, readable in lineage."""
    return f"{job_name}/{task_name}/{key}"


def build(component: pipeline_spec_pb2.ComponentSpec, parameters: Mapping[str, struct_pb2.Value],
          input_artifacts: Mapping[str, ArtifactList], task_root: str, job_name: str,
          task_name: str) -> pipeline_spec_pb2.ExecutorInput:
    """The ExecutorInput of one task; outputs go under `task_root/<output key>`."""
    result = pipeline_spec_pb2.ExecutorInput()
    for name, value in parameters.items():
        result.inputs.parameter_values[name].CopyFrom(value)
    for name, artifacts in input_artifacts.items():
        result.inputs.artifacts[name].artifacts.extend(artifacts)
    for key, spec in component.output_definitions.artifacts.items():
        result.outputs.artifacts[key].artifacts.add(
            name=output_artifact_name(job_name, task_name, key), type=spec.artifact_type,
            uri=os.path.join(task_root, key))
    for key in component.output_definitions.parameters:
        result.outputs.parameters[key].output_file = os.path.join(task_root, "parameters", key)
    result.outputs.output_file = os.path.join(task_root, EXECUTOR_OUTPUT_FILE)
    return result


def as_dict(executor_input: pipeline_spec_pb2.ExecutorInput,
            component: pipeline_spec_pb2.ComponentSpec) -> dict:
    """The ExecutorInput as the JSON the container receives (integer parameters as ints)."""
    return executor_input_utils.executor_input_to_dict(executor_input, component)


def command_line(task_name: str, command: Sequence[str], args: Sequence[str], executor_input_dict: dict,
                 job_name: str, pipeline_root: str, python: Optional[str] = None) -> list[str]:
    """The container's command and arguments with placeholders filled in, and the image's
    `python` replaced by this interpreter (`python`): the container-less equivalent.

    Raises:
      ValueError: the command is not a Python one (only TFX's Python entrypoints can run
        without their image).
    """
    if not command or os.path.basename(command[0]) not in ("python", "python3"):
        raise ValueError(f"Task {task_name}'s container command {list(command)} does not start with "
                         f"python; run-spec runs only TFX's Python entrypoints, without containers.")
    resolved = placeholder_utils.replace_placeholders(
        list(command) + list(args), executor_input_dict, pipeline_resource_name=job_name,
        task_resource_name=task_name, pipeline_root=pipeline_root)
    return [python or sys.executable] + resolved[1:]


def read_executor_output(path: str) -> pipeline_spec_pb2.ExecutorOutput:
    """The ExecutorOutput a task wrote (an empty one if it wrote none)."""
    result = pipeline_spec_pb2.ExecutorOutput()
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            json_format.Parse(f.read(), result, ignore_unknown_fields=True)
    return result


def outputs_after_run(executor_input: pipeline_spec_pb2.ExecutorInput,
                      executor_output: pipeline_spec_pb2.ExecutorOutput,
                      component: pipeline_spec_pb2.ComponentSpec) -> dict[str, ArtifactList]:
    """Each output's artifacts as the orchestrator keeps them: what the executor reported
    (uri, metadata), with the name and type from the ExecutorInput where it left them out
    (TFX's entrypoint reports no types; downstream executors need them)."""
    result = {}
    for key, given in executor_input.outputs.artifacts.items():
        reported = executor_output.artifacts[key].artifacts if key in executor_output.artifacts else given.artifacts
        artifacts = []
        for index, artifact in enumerate(reported):
            merged = pipeline_spec_pb2.RuntimeArtifact()
            merged.CopyFrom(artifact)
            template = given.artifacts[min(index, len(given.artifacts) - 1)]
            merged.type.CopyFrom(component.output_definitions.artifacts[key].artifact_type)
            merged.name = merged.name or template.name
            merged.uri = merged.uri or template.uri
            artifacts.append(merged)
        result[key] = artifacts
    return result


def apply_driver_output(executor_input: pipeline_spec_pb2.ExecutorInput,
                        driver_output: pipeline_spec_pb2.ExecutorOutput,
                        component: pipeline_spec_pb2.ComponentSpec) -> None:
    """Folds a preCacheCheck driver's output into the executor's input, as Vertex AI does
    between the two: its parameter values (ExampleGen's span, version, fingerprint and
    resolved input_config) join the inputs, its artifacts replace the output templates."""
    for name, value in driver_output.parameter_values.items():
        executor_input.inputs.parameter_values[name].CopyFrom(value)
    for key, artifacts in outputs_after_run(executor_input, driver_output, component).items():
        del executor_input.outputs.artifacts[key].artifacts[:]
        executor_input.outputs.artifacts[key].artifacts.extend(artifacts)
