"""The image is the commit: each task's container command in a compiled spec starts with
kubeflow/code_check.py, which compares the image's code with the spec's before TFX runs.

"The image" here is a copy of the project's sources in a temporary directory, as
kubeflow/Dockerfile lays them out (no .git; the commit in BERTPIPE_GIT_COMMIT), and the
check runs there for real, in a fresh interpreter, with the command the spec gives."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, TINY_PIPELINE_FLAGS
from pipeline import cli, code_version


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("spec") / "pipeline.json"
    assert cli.main(["compile", "--output", str(out), "--pipeline_root", "gs://bucket/bert", "--image",
                     "gcr.io/project/bert-tfx-pipeline:check"] + TINY_PIPELINE_FLAGS) == 0
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def _image(tmp_path) -> str:
    """The project's sources as the image holds them (kubeflow/Dockerfile's COPY lines)."""
    image = tmp_path / "pipeline"
    for top in code_version.SOURCE_DIRS:
        shutil.copytree(os.path.join(REPO_ROOT, top), image / top, ignore=shutil.ignore_patterns("__pycache__"))
    return str(image)


def _run_in_image(image: str, command: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=image, BERTPIPE_GIT_COMMIT="0123abcd" * 5)
    python_argv = [sys.executable] + command[1:]  # the image's `python`
    return subprocess.run(python_argv, cwd=image, env=env, capture_output=True, text=True, timeout=120)


def test_every_task_container_is_wrapped_with_this_checkouts_code_version(compiled):
    executors = compiled["pipelineSpec"]["deploymentSpec"]["executors"]
    containers = [e["container"] for e in executors.values() if "container" in e]
    assert len(containers) >= 5
    here = code_version.current().to_dict()
    for container in containers:
        command = container["command"]
        assert command[:4] == ["python", "-m", "kubeflow.code_check", "--code_version"]
        assert json.loads(command[4])["source_hash"] == here["source_hash"]
        assert command[5] == "--" and command[6:9] == ["python", "-m",
                                                       "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]


def test_an_image_of_other_code_fails_in_one_line_before_the_task_runs(compiled, tmp_path):
    image = _image(tmp_path)
    with open(os.path.join(image, "components", "trainer", "run_fn.py"), "a", encoding="utf-8") as f:
        f.write("\n# built from another commit\n")
    trainer = compiled["pipelineSpec"]["deploymentSpec"]["executors"]["BertTrainer_executor"]["container"]
    # The spec's own command and arguments (placeholders left unfilled: the check comes first).
    result = _run_in_image(image, trainer["command"] + trainer["args"])
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    spec = json.loads(trainer["command"][4])
    assert line.startswith("kubeflow.code_check: this image's code is not the spec's")
    assert f"spec source_hash {spec['source_hash']}" in line and "commit 0123abcd" in line
    assert f"image source_hash {code_version.source_hash(image)}" in line


def test_the_same_code_runs_the_wrapped_command(compiled, tmp_path):
    image = _image(tmp_path)
    trainer = compiled["pipelineSpec"]["deploymentSpec"]["executors"]["BertTrainer_executor"]["container"]
    check = trainer["command"][:6]  # python -m kubeflow.code_check --code_version JSON --
    result = _run_in_image(image, check + ["python", "-c", "import sys; print('ran with', sys.executable)"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ran with {sys.executable}"


def test_a_training_job_replica_refuses_an_image_of_other_code_before_training(monkeypatch):
    """The Vertex AI training job's command is TFX's (not wrapped): its replicas run
    BertTrainerExecutor, which checks the spec's code version when the job's container spec
    sets BERTPIPE_CHECK_CODE_VERSION (pipeline/vertex_resources.py sets it in every pool)."""
    from components import code_identity
    from components.trainer.component import BertTrainerExecutor, check_replica_code

    here = code_version.current().to_dict()
    other = dict(here, source_hash="0123456789abcdef", git_commit="c0ffee")
    monkeypatch.setenv(code_identity.CHECK_CODE_ENV, "1")
    check_replica_code(here, os.environ)  # the same code: nothing to say
    exec_properties = {"custom_config": json.dumps({"code_version": other})}
    with pytest.raises(ValueError, match=r"^Trainer replica: this image's code is not the spec's: image source_hash "
                                         rf"{here['source_hash']} .* spec source_hash 0123456789abcdef \(commit c0ffee\)"):
        BertTrainerExecutor().Do({}, {}, exec_properties)
    monkeypatch.delenv(code_identity.CHECK_CODE_ENV)
    check_replica_code(other, os.environ)  # locally (no job container) nothing is checked
