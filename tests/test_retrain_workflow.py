"""The CI workflow (.github/workflows/retrain.yml) calls only commands and flags that exist:
every `bertpipe` call is checked against pipeline.cli.build_parser(), every `make` call
against the Makefile, so the file cannot rot silently when the CLI changes."""
from __future__ import annotations

import argparse
import os
import re
import shlex

import yaml

from conftest import REPO_ROOT
from pipeline.cli import build_parser

WORKFLOW = os.path.join(REPO_ROOT, ".github", "workflows", "retrain.yml")


def _workflow() -> dict:
    with open(WORKFLOW, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _commands(script: str) -> list[list[str]]:
    """Shell commands of a `run:` script as token lists: continuation lines joined, split at
    pipes, `;` and `&&`; GitHub `${{ }}` expressions become one word."""
    script = re.sub(r"\$\{\{[^}]*\}\}", "EXPR", script.replace("\\\n", " "))
    commands = []
    for line in script.splitlines():
        for part in re.split(r"\|\||&&|\||;", line):
            tokens = shlex.split(part, comments=True)
            if tokens:
                commands.append(tokens)
    return commands


def _all_commands(workflow: dict) -> list[tuple[str, list[str]]]:
    return [(job_name, tokens) for job_name, job in workflow["jobs"].items() for step in job["steps"]
            if "run" in step for tokens in _commands(step["run"])]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _make_targets() -> set[str]:
    with open(os.path.join(REPO_ROOT, "Makefile"), encoding="utf-8") as f:
        return set(re.findall(r"^([A-Za-z][\w-]*):", f.read(), flags=re.M))


def test_every_bertpipe_command_and_flag_exists_in_the_cli():
    commands = _subparsers(build_parser())
    calls = [(job, tokens) for job, tokens in _all_commands(_workflow())
             if os.path.basename(tokens[0]) == "bertpipe"]
    assert calls, "the workflow calls no bertpipe command"
    problems = []
    for job, tokens in calls:
        command = tokens[1]
        if command not in commands:
            problems.append(f"job {job}: `bertpipe {command}` is not a bertpipe command ({sorted(commands)})")
            continue
        known = commands[command]._option_string_actions
        for token in tokens[2:]:
            if token.startswith("--") and token.split("=", 1)[0] not in known:
                problems.append(f"job {job}: `bertpipe {command}` has no flag {token.split('=', 1)[0]}")
    assert not problems, "\n".join(problems)


def test_every_make_target_exists():
    targets = _make_targets()
    calls = [tokens for _, tokens in _all_commands(_workflow()) if tokens[0] == "make"]
    assert calls
    for tokens in calls:
        assert set(tokens[1:]) <= targets, tokens


def test_triggers_and_jobs():
    workflow = _workflow()
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert {"schedule", "workflow_dispatch", "repository_dispatch"} <= set(triggers)
    assert triggers["workflow_dispatch"]["inputs"]
    jobs = workflow["jobs"]
    commands = {job: [" ".join(t[:2]) for j, t in _all_commands(workflow) if j == job] for job in jobs}
    assert "make test" in commands["test"]
    # Compile and submit the retraining pipeline after the tests, waiting for the run.
    assert jobs["vertex"]["needs"] == "test"
    vertex = [t for j, t in _all_commands(workflow) if j == "vertex" and os.path.basename(t[0]) == "bertpipe"]
    assert any(t[1] == "compile" and "--retrain" in t for t in vertex)
    assert any(t[1] == "submit" and "--wait" in t and "--summary_file" in t for t in vertex)
    # Vertex AI trains only on a new span (tests/test_kubeflow_vertex_retrain.py).
    assert any(t[1] == "submit" and "--if_new_span" in t for t in vertex)
    # Workload Identity Federation: an OIDC token, no key file.
    assert workflow["permissions"]["id-token"] == "write"
    auth = [s for s in jobs["vertex"]["steps"] if s.get("uses", "").startswith("google-github-actions/auth")]
    assert auth and "workload_identity_provider" in auth[0]["with"]
    assert any("GITHUB_STEP_SUMMARY" in s.get("run", "") for s in jobs["vertex"]["steps"])
    assert any(t[1] == "retrain" for j, t in _all_commands(workflow)
               if j == "local-smoke" and os.path.basename(t[0]) == "bertpipe")


def test_the_check_catches_an_unknown_flag():
    """The parser check itself: a flag bertpipe does not have is reported."""
    known = _subparsers(build_parser())["retrain"]._option_string_actions
    tokens = _commands("bertpipe retrain --output_dir x \\\n  --no_such_flag 1 | tee log")[0]
    assert [t for t in tokens if t.startswith("--") and t not in known] == ["--no_such_flag"]


def test_the_vertex_job_builds_the_image_of_its_commit_and_compiles_with_its_digest():
    steps = _workflow()["jobs"]["vertex"]["steps"]
    names = [s.get("name") or s.get("uses", "") for s in steps]
    [image] = [s for s in steps if s.get("id") == "image"]
    [compile_step] = [s for s in steps if "bertpipe compile" in s.get("run", "")]
    auth = next(i for i, n in enumerate(names) if n.startswith("google-github-actions/auth"))
    assert auth < steps.index(image) < steps.index(compile_step)
    commands = [" ".join(t) for t in _commands(image["run"])]
    # Tagged by the code, built from this commit with its commit recorded, pushed only when new.
    assert any(c.startswith(".venv/bin/bertpipe code-version --image_tag") for c in commands)
    [build] = [c for c in commands if c.startswith("docker build")]
    assert "-f kubeflow/Dockerfile" in build and "--build-arg BERTPIPE_GIT_COMMIT=$GITHUB_SHA" in build
    assert re.search(r"^if ! gcloud artifacts docker images describe", image["run"], flags=re.M)
    assert "image=$IMAGE_REPOSITORY@$digest" in image["run"]  # a digest, not a tag that can move
    assert '--image "${{ steps.image.outputs.image }}"' in compile_step["run"]
    assert "vars.PIPELINE_IMAGE" not in yaml.safe_dump(_workflow())


def test_the_test_job_gets_a_mariadb_service_named_as_the_mysql_test_reads_it():
    import test_lineage_mysql  # pylint: disable=import-outside-toplevel

    job = _workflow()["jobs"]["test"]
    [service] = job["services"].values()
    assert service["image"].startswith("mariadb:")
    [step] = [s for s in job["steps"] if s.get("run", "").strip() == "make test"]
    env = step["env"]  # the step's: a job's env cannot read the `job` context (the service's port)
    assert "env" not in job or not any("job." in str(v) for v in job["env"].values())
    prefix = test_lineage_mysql.EXTERNAL_ENV
    assert {prefix + k for k in ("HOST", "PORT", "USER", "PASSWORD", "DATABASE")} <= set(env)
    assert env[prefix + "USER"] == service["env"]["MARIADB_USER"]
    assert env[prefix + "PASSWORD"] == service["env"]["MARIADB_PASSWORD"]
    assert env[prefix + "DATABASE"] == service["env"]["MARIADB_DATABASE"]
    assert "job.services.mariadb.ports['3306']" in env[prefix + "PORT"]
