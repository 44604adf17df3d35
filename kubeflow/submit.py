"""`bertpipe submit`: a compiled spec to Vertex AI Pipelines, and (with --wait) what it produced.

    bertpipe submit SPEC.json --project P --region R [--pipeline_root gs://...]
        [--service_account SA] [--network NET] [--enable_caching true|false] [--label k=v ...]
        [--encryption_key KMS_NAME] [--parameter name=value ...] [--display_name NAME]
        [--if_new_span [--force]] [--wait] [--summary_file PATH]

It builds `google.cloud.aiplatform.PipelineJob` and calls `.submit(service_account=,
network=)`, which sends Vertex AI a CreatePipelineJobRequest; then it prints the run's
console link. With --wait it polls the job to its end and prints the final state, the
Evaluator's do_eval metrics (read from the ModelEvaluation artifact the job's Evaluator
task output), the blessing and where the Pusher pushed; a job that did not succeed exits
non-zero. --summary_file writes the same as Markdown (e.g. $GITHUB_STEP_SUMMARY).

Everything checkable is checked before a request is sent: the spec file, the gs:// root,
label syntax (Vertex AI's rules), parameter names and types against the spec. With
--if_new_span a retraining spec is submitted only if its data has a span no blessed model
has seen (kubeflow/vertex_retrain.py); otherwise no job is created and the command exits 0.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Callable, Optional

from pipeline.names import check_gcs_uri

# Vertex AI / Google Cloud label rules: keys start with a lowercase letter; keys and values
# are at most 63 lowercase letters, digits, '_' or '-'.
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_KMS_KEY = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")
# The tasks whose outputs the summary reads (create_pipeline's component ids).
EVALUATOR_TASK, PUSHER_TASK = "Evaluator", "Pusher"


@dataclasses.dataclass(frozen=True)
class SubmitRequest:
    """What to submit, checked (see `request_from`)."""

    spec_path: str
    project: str
    region: str
    pipeline_root: str
    display_name: str
    service_account: Optional[str] = None
    network: Optional[str] = None
    enable_caching: Optional[bool] = None
    labels: dict = dataclasses.field(default_factory=dict)
    encryption_key: Optional[str] = None
    parameter_values: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """A finished run as the summary shows it."""

    state: str
    console_link: str
    metrics: dict
    blessed: Optional[bool]
    pushed_destination: Optional[str]
    evaluation_uri: Optional[str]
    error: Optional[str] = None

    @property
    def succeeded(self) -> bool:
        return self.state == "PIPELINE_STATE_SUCCEEDED"

    def render(self) -> str:
        lines = [f"Vertex AI pipeline run ended: {self.state}", f"  console:        {self.console_link}"]
        if self.error:
            lines.append(f"  error:          {self.error}")
        if self.evaluation_uri:
            lines.append(f"  eval metrics:   {self.evaluation_uri}")
        if self.blessed is not None:
            lines.append(f"  blessed:        {'yes' if self.blessed else 'no'}")
        lines.append(f"  pushed to:      {self.pushed_destination or '(not pushed)'}")
        if self.metrics:
            lines.append("  do_eval metrics (Evaluator, eval split):")
            lines += [f"    {name} = {value:.6f}" for name, value in self.metrics.items()]
        return "\n".join(lines)

    def markdown(self) -> str:
        """A GitHub job summary: state, link, metrics table, blessing, push destination."""
        icon = "✅" if self.succeeded else "❌"
        lines = [f"## {icon} BERT pretraining on Vertex AI: `{self.state}`", "",
                 f"[The run in the Cloud console]({self.console_link})", ""]
        if self.error:
            lines += [f"**Error:** {self.error}", ""]
        if self.metrics:
            lines += ["| metric (eval split) | value |", "| --- | --- |"]
            lines += [f"| {name} | {value:.6f} |" for name, value in self.metrics.items()]
            lines.append("")
        if self.blessed is not None:
            lines.append(f"- Blessed: **{'yes' if self.blessed else 'no'}**")
        lines.append(f"- Pushed to: {f'`{self.pushed_destination}`' if self.pushed_destination else 'not pushed'}")
        if self.evaluation_uri:
            lines.append(f"- Evaluation: `{self.evaluation_uri}`")
        return "\n".join(lines) + "\n"


def load_spec(path: str) -> dict:
    """The PipelineJob JSON `bertpipe compile` wrote; ValueError in one line if it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except OSError as e:
        raise ValueError(f"Cannot read the spec {path}: {e.strerror}; give the JSON `bertpipe compile` wrote.") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"The spec {path} is not JSON ({e.msg} at line {e.lineno}); give the file "
                         f"`bertpipe compile` wrote.") from e
    if not isinstance(spec, dict) or "pipelineSpec" not in spec or \
            "name" not in spec.get("pipelineSpec", {}).get("pipelineInfo", {}):
        raise ValueError(f"The spec {path} is not a Vertex AI PipelineJob JSON (no pipelineSpec.pipelineInfo.name); "
                         f"give the file `bertpipe compile` wrote.")
    return spec


def parse_pairs(flag: str, items: Optional[list[str]]) -> dict[str, str]:
    """['k=v', ...] -> {k: v}; ValueError naming `flag` for an item without '='."""
    pairs = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} {item!r} is not KEY=VALUE.")
        pairs[key] = value
    return pairs


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise ValueError(f"--label {key}={value} is not a Vertex AI label: keys start with a lowercase letter, "
                             f"keys and values are at most 63 lowercase letters, digits, '_' or '-'.")
    return labels


def _parameter_types(spec: dict) -> dict[str, str]:
    """Runtime parameter name -> type, from the spec's root inputs (schema 2.0 `type`, 2.1 `parameterType`)."""
    parameters = spec["pipelineSpec"].get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return {name: p.get("parameterType") or p.get("type", "STRING") for name, p in parameters.items()}


def typed_parameters(spec: dict, raw: dict[str, str]) -> dict[str, Any]:
    """--parameter values converted to the types the spec declares; unknown names refused."""
    types = _parameter_types(spec)
    values = {}
    for name, text in raw.items():
        if name not in types:
            known = ", ".join(sorted(types)) or "none: the spec has no runtime parameters"
            raise ValueError(f"--parameter {name}: the spec has no such runtime parameter (known: {known}).")
        kind = types[name]
        try:
            if kind in ("INT", "NUMBER_INTEGER"):
                values[name] = int(text)
            elif kind in ("DOUBLE", "NUMBER_DOUBLE"):
                values[name] = float(text)
            elif kind == "BOOLEAN":
                if text.lower() not in ("true", "false"):
                    raise ValueError(text)
                values[name] = text.lower() == "true"
            else:
                values[name] = text
        except ValueError as e:
            raise ValueError(f"--parameter {name}={text}: the spec declares it {kind}.") from e
    return values


def request_from(spec_path: str, project: Optional[str], region: Optional[str], pipeline_root: Optional[str] = None,
                 service_account: Optional[str] = None, network: Optional[str] = None,
                 enable_caching: Optional[bool] = None, labels: Optional[list[str]] = None,
                 encryption_key: Optional[str] = None, parameters: Optional[list[str]] = None,
                 display_name: Optional[str] = None) -> SubmitRequest:
    """The checked SubmitRequest for `bertpipe submit`'s arguments."""
    spec = load_spec(spec_path)
    if not project:
        raise ValueError("--project is missing: the Google Cloud project to run the pipeline in.")
    if not region or not _REGION.match(region):
        raise ValueError(f"--region {region!r} is not a Google Cloud region (e.g. us-central1).")
    root = pipeline_root or spec.get("runtimeConfig", {}).get("gcsOutputDirectory")
    check_gcs_uri("--pipeline_root" if pipeline_root else f"the spec's pipeline root ({spec_path})", root)
    if encryption_key and not _KMS_KEY.match(encryption_key):
        raise ValueError(f"--encryption_key {encryption_key!r} is not a Cloud KMS key name: "
                         f"projects/P/locations/L/keyRings/R/cryptoKeys/K.")
    if service_account and "@" not in service_account:
        raise ValueError(f"--service_account {service_account!r} is not a service account e-mail (NAME@PROJECT."
                         f"iam.gserviceaccount.com).")
    return SubmitRequest(
        spec_path=spec_path, project=project, region=region, pipeline_root=root,
        display_name=display_name or spec["pipelineSpec"]["pipelineInfo"]["name"],
        service_account=service_account, network=network, enable_caching=enable_caching,
        labels=check_labels(parse_pairs("--label", labels)), encryption_key=encryption_key,
        parameter_values=typed_parameters(spec, parse_pairs("--parameter", parameters)))


def build_job(request: SubmitRequest, credentials=None):
    """The aiplatform.PipelineJob for `request` (credentials: None = Application Default Credentials)."""
    from google.cloud import aiplatform  # Deferred: seconds to import.

    return aiplatform.PipelineJob(
        display_name=request.display_name, template_path=request.spec_path, pipeline_root=request.pipeline_root,
        parameter_values=request.parameter_values or None, enable_caching=request.enable_caching,
        encryption_spec_key_name=request.encryption_key, labels=request.labels or None,
        project=request.project, location=request.region, credentials=credentials)


def submit(request: SubmitRequest, credentials=None):
    """Submits the job; returns (the PipelineJob, its console link)."""
    job = build_job(request, credentials)
    job.submit(service_account=request.service_account, network=request.network)
    return job, job._dashboard_uri()  # pylint: disable=protected-access  # the SDK's own link builder


def _output_artifacts(task, name: str) -> list:
    artifact_list = task.outputs.get(name)
    return list(artifact_list.artifacts) if artifact_list is not None else []


def outcome_of(job, console_link: str,
               read_metrics: Optional[Callable[[str], dict]] = None) -> RunOutcome:
    """What the finished `job` produced, from its task details: the Evaluator's evaluation
    and blessing, the Pusher's pushed model (TFX records `blessed`, `pushed` and
    `pushed_destination` as custom properties, which Vertex AI keeps as artifact metadata)."""
    if read_metrics is None:
        from components.evaluator.results import read_eval_metrics as read_metrics  # Deferred: TFMA.
    tasks = {task.task_name: task for task in job.task_details}
    evaluation_uri, blessed, pushed_destination, metrics = None, None, None, {}
    evaluator = tasks.get(EVALUATOR_TASK)
    if evaluator is not None:
        evaluations = _output_artifacts(evaluator, "evaluation")
        if evaluations and evaluations[0].uri:
            evaluation_uri = evaluations[0].uri
        blessings = _output_artifacts(evaluator, "blessing")
        if blessings and "blessed" in blessings[0].metadata:
            blessed = int(blessings[0].metadata["blessed"]) == 1
    pusher = tasks.get(PUSHER_TASK)
    if pusher is not None:
        pushed = _output_artifacts(pusher, "pushed_model")
        if pushed and int(pushed[0].metadata.get("pushed", 0)) == 1:
            pushed_destination = pushed[0].metadata.get("pushed_destination")
    error = None
    if evaluation_uri and evaluator.state.name == "SUCCEEDED":
        try:
            metrics = read_metrics(evaluation_uri)
        except (ValueError, OSError) as e:
            error = f"could not read the evaluation: {e}"
    gca = job.gca_resource
    if gca.error and gca.error.message:
        error = gca.error.message.splitlines()[0]
    return RunOutcome(state=gca.state.name, console_link=console_link, metrics=metrics, blessed=blessed,
                      pushed_destination=pushed_destination, evaluation_uri=evaluation_uri, error=error)


def wait(job, console_link: str, read_metrics: Optional[Callable[[str], dict]] = None) -> RunOutcome:
    """Blocks until the job ends (the SDK's own polling), then reads its outcome."""
    try:
        job.wait()
    except RuntimeError:
        pass  # The SDK raises on a failed or cancelled job; the outcome says which and why.
    return outcome_of(job, console_link, read_metrics)


def write_summary(path: str, outcome: RunOutcome) -> None:
    """Adds the run's Markdown summary after what `path` already holds (see append_markdown)."""
    append_markdown(path, outcome.markdown())


def append_markdown(path: str, text: str) -> None:
    """Adds `text` after what `path` already holds (every step of a GitHub job appends to
    GITHUB_STEP_SUMMARY); written to a temporary file, then renamed into place."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    before = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            before = f.read()
    staging = f"{path}.partial"
    with open(staging, "w", encoding="utf-8") as f:
        f.write(before + text)
    os.replace(staging, path)
