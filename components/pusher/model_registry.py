"""Uploads a pushed model to Vertex AI Model Registry as a new version of one Model.

What teams on Vertex do with a blessed model next: register it, so that endpoints and
batch jobs name `projects/P/locations/R/models/NAME@blessed` instead of a bucket path. The
Pusher (components/pusher/executor.py) calls `register` after its atomic push, only for a
blessed model and only when the pipeline was compiled with `--registry_model NAME`:

  1. GetModel NAME: missing -> UploadModel with model_id=NAME (the Model's first version);
     present -> UploadModel with parent_model=NAME (a new version of it);
  2. the version's artifact_uri is the pushed SavedModel directory, served by a prebuilt
     TensorFlow serving container, with labels naming the run, the span and the code;
  3. the `blessed` alias moves to the new version: MergeVersionAliases `-blessed` on the
     version holding it (GetModel NAME@blessed), then `blessed` on the new one (an alias
     names one version of a Model at a time).

Only google.cloud.aiplatform_v1's ModelServiceClient is used; `client_for` builds it for
the region's endpoint, and tests replace it with a fake that takes the same request protos.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional

BLESSED_ALIAS = "blessed"
# Model ids: up to 63 of [a-z0-9_-], not starting with a digit or '-' (UploadModelRequest.model_id).
_MODEL_ID = re.compile(r"^[a-z_][a-z0-9_-]{0,62}$")
_LABEL_VALUE_BAD = re.compile(r"[^a-z0-9_-]")
# Vertex AI's prebuilt TensorFlow serving image (CPU). 2.15 is the newest TensorFlow that
# google-cloud-aiplatform 1.x here lists in aiplatform.constants.prediction.TF_CONTAINER_URIS;
# the model is exported by TensorFlow 2.16 with standard ops only.
SERVING_IMAGE = "{prefix}-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
UPLOAD_TIMEOUT_SECONDS = 1800


def default_serving_image(region: str) -> str:
    """The prebuilt TF serving image from the registry nearest `region` (us, europe, asia)."""
    prefix = "europe" if region.startswith("europe") else (
        "asia" if region.startswith(("asia", "australia")) else "us")
    return SERVING_IMAGE.format(prefix=prefix)


@dataclasses.dataclass(frozen=True)
class RegistryTarget:
    """Where and how blessed models are registered (the Pusher's custom_config `model_registry`)."""

    project: str
    region: str
    model_id: str
    serving_image: str
    code_version: str = ""  # a label value naming the code (git commit or source hash)

    def __post_init__(self):
        if not _MODEL_ID.match(self.model_id):
            raise ValueError(f"--registry_model {self.model_id!r} is not a Vertex AI model id: up to 63 lowercase "
                             "letters, digits, '_' or '-', not starting with a digit or '-'.")
        if not self.project or not self.region:
            raise ValueError("--registry_model needs --project and --region (where the Model lives).")

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    @property
    def model_name(self) -> str:
        return f"{self.parent}/models/{self.model_id}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "RegistryTarget":
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class RegisteredVersion:
    model: str  # projects/P/locations/R/models/NAME
    version_id: str

    @property
    def resource_name(self) -> str:
        """`projects/P/locations/R/models/NAME@VERSION`: what lineage records."""
        return f"{self.model}@{self.version_id}"


def label_value(text: str) -> str:
    """A Google Cloud label value: at most 63 of [a-z0-9_-] (other characters become '-')."""
    return _LABEL_VALUE_BAD.sub("-", str(text).lower())[:63]


def version_labels(run: Optional[str], span: Optional[int], code_version: str) -> dict[str, str]:
    labels = {"run": run, "span": None if span is None else str(span), "code_version": code_version}
    return {key: label_value(value) for key, value in labels.items() if value}


def client_for(region: str):
    """A ModelServiceClient on the region's endpoint (Application Default Credentials)."""
    from google.cloud import aiplatform_v1  # Deferred: only a registering Pusher needs it.

    return aiplatform_v1.ModelServiceClient(client_options={"api_endpoint": f"{region}-aiplatform.googleapis.com"})


def register(client, target: RegistryTarget, artifact_uri: str, labels: dict[str, str],
             description: str = "") -> RegisteredVersion:
    """Uploads `artifact_uri` (a SavedModel directory) as a new version of the target Model
    and moves the `blessed` alias to it (see the module docstring).

    Raises:
      google.api_core exceptions from the service (the Pusher's task then fails).
    """
    from google.api_core import exceptions as api_exceptions
    from google.cloud.aiplatform_v1 import types

    try:
        client.get_model(request=types.GetModelRequest(name=target.model_name))
        where = {"parent_model": target.model_name}
    except api_exceptions.NotFound:
        where = {"model_id": target.model_id}
    model = types.Model(display_name=target.model_id, artifact_uri=artifact_uri, labels=labels,
                        version_description=description,
                        container_spec=types.ModelContainerSpec(image_uri=target.serving_image))
    operation = client.upload_model(request=types.UploadModelRequest(parent=target.parent, model=model, **where))
    response = operation.result(timeout=UPLOAD_TIMEOUT_SECONDS)
    version = RegisteredVersion(model=response.model, version_id=response.model_version_id)
    move_alias(client, version)
    return version


def move_alias(client, version: RegisteredVersion, alias: str = BLESSED_ALIAS) -> None:
    """Takes `alias` from the version holding it (if another) and gives it to `version`."""
    from google.api_core import exceptions as api_exceptions
    from google.cloud.aiplatform_v1 import types

    try:
        holder = client.get_model(request=types.GetModelRequest(name=f"{version.model}@{alias}"))
    except api_exceptions.NotFound:
        holder = None
    if holder is not None and holder.version_id != version.version_id:
        client.merge_version_aliases(request=types.MergeVersionAliasesRequest(
            name=f"{version.model}@{holder.version_id}", version_aliases=[f"-{alias}"]))
    client.merge_version_aliases(request=types.MergeVersionAliasesRequest(
        name=version.resource_name, version_aliases=[alias]))
