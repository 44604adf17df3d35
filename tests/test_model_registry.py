"""The Pusher's upload to Vertex AI Model Registry, against a fake ModelService.

Vertex AI cannot be reached here. The fake takes the real `google.cloud.aiplatform_v1`
request protos (GetModelRequest, UploadModelRequest, MergeVersionAliasesRequest) and keeps
the semantics the protos' documentation states: a Model has versions "1", "2", ...; the
first version gets the `default` alias; `parent_model` must exist and `model_id` must not;
GetModel takes `NAME`, `NAME@VERSION` or `NAME@ALIAS` and answers NotFound otherwise;
MergeVersionAliases needs an explicit version and an alias matching
[a-z][a-zA-Z0-9-]{0,126}[a-z-0-9], where `-alias` removes it. One rule is this fake's
assumption, not documented: adding an alias another version holds is refused
(FailedPrecondition), so the code must take it from that version first.
"""
from __future__ import annotations

import json
import os
import re

import pytest
from google.api_core import exceptions as api_exceptions
from google.cloud.aiplatform_v1 import types
from tfx.types import standard_artifacts, standard_component_specs

from components.lineage import queries, render
from components.lineage.snapshot import Artifact, Execution, Run, Snapshot
from components.pusher import executor as pusher_executor
from components.pusher import model_registry

PROJECT, REGION = "my-project", "us-central1"
_ALIAS = re.compile(r"^-?[a-z][a-zA-Z0-9-]{0,126}[a-z-0-9]$")


class _Operation:
    def __init__(self, response):
        self.response = response

    def result(self, timeout=None):
        return self.response


class FakeModelService:
    """ModelService's GetModel, UploadModel and MergeVersionAliases over in-memory versions."""

    def __init__(self):
        self.versions: dict[str, list[types.Model]] = {}  # model resource name -> its versions
        self.requests = []

    def _version(self, name: str) -> types.Model:
        model, _, which = name.partition("@")
        if model not in self.versions:
            raise api_exceptions.NotFound(f"Model {model} not found.")
        versions = self.versions[model]
        if not which:
            which = "default"
        for version in versions:
            if which == version.version_id or which in version.version_aliases:
                return version
        raise api_exceptions.NotFound(f"Model version {name} not found.")

    def get_model(self, request: types.GetModelRequest):
        assert isinstance(request, types.GetModelRequest)
        self.requests.append(request)
        return types.Model(self._version(request.name))

    def upload_model(self, request: types.UploadModelRequest):
        assert isinstance(request, types.UploadModelRequest)
        self.requests.append(request)
        if request.parent_model:
            if request.parent_model not in self.versions:
                raise api_exceptions.NotFound(f"Parent model {request.parent_model} not found.")
            name = request.parent_model
        else:
            if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,62}", request.model_id):
                raise api_exceptions.InvalidArgument(f"Invalid model_id {request.model_id}.")
            name = f"{request.parent}/models/{request.model_id}"
            if name in self.versions:
                raise api_exceptions.AlreadyExists(f"Model {name} already exists.")
            self.versions[name] = []
        version = types.Model(request.model)
        version.name = name
        version.version_id = str(len(self.versions[name]) + 1)
        version.version_aliases = [] if self.versions[name] else ["default"]
        self.versions[name].append(version)
        return _Operation(types.UploadModelResponse(model=name, model_version_id=version.version_id))

    def merge_version_aliases(self, request: types.MergeVersionAliasesRequest):
        assert isinstance(request, types.MergeVersionAliasesRequest)
        self.requests.append(request)
        model, _, version_id = request.name.partition("@")
        if not version_id or not version_id.isdigit():
            raise api_exceptions.InvalidArgument(f"{request.name}: name a model version explicitly (NAME@ID).")
        version = self._version(request.name)
        for alias in request.version_aliases:
            if not _ALIAS.match(alias):
                raise api_exceptions.InvalidArgument(f"Invalid alias {alias}.")
            if alias.startswith("-"):
                version.version_aliases = [a for a in version.version_aliases if a != alias[1:]]
                continue
            holders = [v.version_id for v in self.versions[model] if alias in v.version_aliases]
            if holders and holders != [version.version_id]:
                raise api_exceptions.FailedPrecondition(f"Alias {alias} is on version {holders[0]}.")
            if alias not in version.version_aliases:
                version.version_aliases = list(version.version_aliases) + [alias]
        return types.Model(version)

    def aliases(self, model: str) -> dict[str, list[str]]:
        return {v.version_id: list(v.version_aliases) for v in self.versions[model]}


TARGET = model_registry.RegistryTarget(project=PROJECT, region=REGION, model_id="bert-pretraining",
                                       serving_image=model_registry.default_serving_image(REGION),
                                       code_version="abc123")
MODEL = f"projects/{PROJECT}/locations/{REGION}/models/bert-pretraining"


def test_first_registration_creates_the_model_and_blesses_version_1():
    service = FakeModelService()
    labels = model_registry.version_labels("bert-pretraining-20261206", 3, "abc123")
    version = model_registry.register(service, TARGET, "gs://b/serving/100", labels, description="100")
    assert version.resource_name == f"{MODEL}@1"
    get, upload = service.requests[:2]
    assert isinstance(get, types.GetModelRequest) and get.name == MODEL
    merges = [r for r in service.requests if isinstance(r, types.MergeVersionAliasesRequest)]
    assert upload.parent == f"projects/{PROJECT}/locations/{REGION}"
    assert upload.model_id == "bert-pretraining" and not upload.parent_model
    assert upload.model.artifact_uri == "gs://b/serving/100"
    assert upload.model.container_spec.image_uri == "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
    assert dict(upload.model.labels) == {"run": "bert-pretraining-20261206", "span": "3", "code_version": "abc123"}
    assert [m.name for m in merges] == [f"{MODEL}@1"] and list(merges[0].version_aliases) == ["blessed"]
    assert service.aliases(MODEL) == {"1": ["default", "blessed"]}


def test_a_later_model_is_a_new_version_and_takes_the_blessed_alias():
    service = FakeModelService()
    model_registry.register(service, TARGET, "gs://b/serving/100", {})
    service.requests.clear()
    version = model_registry.register(service, TARGET, "gs://b/serving/101", {"span": "4"})
    assert version.resource_name == f"{MODEL}@2"
    upload = next(r for r in service.requests if isinstance(r, types.UploadModelRequest))
    assert upload.parent_model == MODEL and not upload.model_id  # a version of the one Model
    merges = [(r.name, list(r.version_aliases)) for r in service.requests
              if isinstance(r, types.MergeVersionAliasesRequest)]
    assert merges == [(f"{MODEL}@1", ["-blessed"]), (f"{MODEL}@2", ["blessed"])]
    assert service.aliases(MODEL) == {"1": ["default"], "2": ["blessed"]}


def test_labels_and_ids_follow_google_clouds_rules():
    assert model_registry.version_labels("Run_2026.12.06T10:00", None, "") == {"run": "run_2026-12-06t10-00"}
    with pytest.raises(ValueError, match="is not a Vertex AI model id"):
        model_registry.RegistryTarget(PROJECT, REGION, "BERT model", "img")
    with pytest.raises(ValueError, match="needs --project and --region"):
        model_registry.RegistryTarget("", REGION, "bert", "img")
    assert model_registry.default_serving_image("europe-west4").startswith("europe-docker.pkg.dev/")


# ----------------------------------------------------------------------------- the Pusher

def _saved_model(path) -> str:
    os.makedirs(os.path.join(path, "Format-Serving", "variables"))
    for name in ("saved_model.pb", "fingerprint.pb"):
        with open(os.path.join(path, "Format-Serving", name), "wb") as f:
            f.write(name.encode())
    return str(path)


def _push(tmp_path, monkeypatch, blessed: int, registry: bool = True):
    """Runs the project's Pusher executor on a model with span 7 and a blessing; returns
    (the PushedModel, the fake service)."""
    service = FakeModelService()
    monkeypatch.setattr(model_registry, "client_for", lambda region: service)
    model = standard_artifacts.Model()
    model.uri = _saved_model(tmp_path / "model")
    model.set_int_custom_property("span", 7)
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", blessed)
    pushed = standard_artifacts.PushedModel()
    # As Vertex AI lays a task's outputs out: <root>/<job>/<task>_<id>/<key>.
    pushed.uri = str(tmp_path / "root" / "bert-pretraining-20261206" / "Pusher_7" / "pushed_model")
    exec_properties = {
        standard_component_specs.PUSH_DESTINATION_KEY: json.dumps(
            {"filesystem": {"base_directory": str(tmp_path / "serving")}}),
        standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps(
            {pusher_executor.REGISTRY_CONFIG_KEY: TARGET.to_dict()} if registry else None),
    }
    pusher_executor.AtomicPusherExecutor().Do(
        {standard_component_specs.MODEL_KEY: [model], standard_component_specs.MODEL_BLESSING_KEY: [blessing]},
        {standard_component_specs.PUSHED_MODEL_KEY: [pushed]}, exec_properties)
    return pushed, service


def test_the_pusher_registers_a_blessed_model_and_records_the_version(tmp_path, monkeypatch):
    pushed, service = _push(tmp_path, monkeypatch, blessed=1)
    assert pushed.get_int_custom_property("pushed") == 1
    destination = pushed.get_string_custom_property("pushed_destination")
    assert pushed.get_string_custom_property(pusher_executor.REGISTRY_PROPERTY) == f"{MODEL}@1"
    upload = next(r for r in service.requests if isinstance(r, types.UploadModelRequest))
    assert upload.model.artifact_uri == destination  # the published version directory
    assert dict(upload.model.labels) == {"run": "bert-pretraining-20261206", "span": "7", "code_version": "abc123"}


def test_a_model_not_blessed_is_never_registered(tmp_path, monkeypatch):
    pushed, service = _push(tmp_path, monkeypatch, blessed=0)
    assert pushed.get_int_custom_property("pushed") == 0
    assert service.requests == [] and not pushed.has_custom_property(pusher_executor.REGISTRY_PROPERTY)


def test_without_a_registry_target_nothing_is_registered(tmp_path, monkeypatch):
    pushed, service = _push(tmp_path, monkeypatch, blessed=1, registry=False)
    assert pushed.get_int_custom_property("pushed") == 1
    assert service.requests == [] and not pushed.has_custom_property(pusher_executor.REGISTRY_PROPERTY)


def test_lineage_shows_the_registry_version_of_a_model():
    model = Artifact("m", "Model", "gs://b/run/BertTrainer_5/model", {})
    pushed = Artifact("p", "PushedModel", "gs://b/run/Pusher_7/pushed_model",
                      {"pushed": 1, "pushed_destination": "gs://b/serving/100", "registry_model": f"{MODEL}@2"})
    trainer = Execution("t", "BertTrainer", "", "COMPLETE", {}, {}, {"model": ["m"]})
    pusher = Execution("x", "Pusher", "", "COMPLETE", {}, {"model": ["m"]}, {"pushed_model": ["p"]})
    snapshot = Snapshot("bert-pretraining", "test", {"m": model, "p": pushed}, {"t": trainer, "x": pusher},
                        [Run("run", ["t", "x"])])
    lineage = queries.model_lineage(snapshot, "latest")
    assert lineage["pushes"][0]["registry_model"] == f"{MODEL}@2"
    assert f"Vertex AI Model Registry: {MODEL}@2" in render.render_model(lineage)


# ----------------------------------------------------------------------------- compile

def test_compile_registry_model_reaches_the_pushers_custom_config(tmp_path):
    from pipeline import cli, code_version

    out = tmp_path / "pipeline.json"
    assert cli.main(["compile", "--output", str(out), "--pipeline_root", "gs://bucket/root", "--image",
                     "gcr.io/my-project/bert:1", "--registry_model", "bert-pretraining", "--project", PROJECT,
                     "--region", "europe-west4"]) == 0
    pusher = json.loads(out.read_text())["pipelineSpec"]["root"]["dag"]["tasks"]["Pusher"]
    custom_config = json.loads(pusher["inputs"]["parameters"]["custom_config"]["runtimeValue"]["constant"])
    version = code_version.current().to_dict()
    assert custom_config[pusher_executor.REGISTRY_CONFIG_KEY] == {
        "project": PROJECT, "region": "europe-west4", "model_id": "bert-pretraining",
        "serving_image": "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
        "code_version": version["git_commit"] or version["source_hash"]}


@pytest.mark.parametrize("flags,message", [
    (["--registry_model", "bert"], "--registry_model needs --project and --region"),
    (["--registry_model", "Bert Model", "--project", PROJECT, "--region", REGION], "is not a Vertex AI model id"),
    (["--registry_serving_image", "img"], "--registry_serving_image goes with --registry_model"),
])
def test_compile_registry_flags_bad_input_is_one_line(tmp_path, capsys, flags, message):
    from pipeline import cli

    assert cli.main(["compile", "--output", str(tmp_path / "p.json"), "--pipeline_root", "gs://bucket/root",
                     "--image", "gcr.io/my-project/bert:1"] + flags) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bertpipe compile: error: ") and "\n" not in err and message in err, err
    assert not (tmp_path / "p.json").exists()
