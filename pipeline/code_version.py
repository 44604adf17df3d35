"""The code version a run records: the package version, the git commit and a hash of the sources.

Read at the entry point (the local runner, `bertpipe compile`) and passed into
`create_pipeline`, which hands it to the Trainer as part of its custom_config. So:
  - ML-metadata records which code made a model (the Trainer execution's properties);
  - a change to the trainer's code or the BERT configs changes the Trainer's inputs, which
    is what TFX's and Vertex AI's caches key on: no stale cached model after a code change.
Inside a container image there is no .git: the commit then comes from the
BERTPIPE_GIT_COMMIT environment variable (a build argument of kubeflow/Dockerfile), else
it is recorded as unknown. The source hash needs no git and is always there.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
from typing import Optional

from components.code_identity import REPO_ROOT, SOURCE_DIRS, source_hash  # noqa: F401  (re-exported)

GIT_COMMIT_ENV = "BERTPIPE_GIT_COMMIT"
# What else kubeflow/Dockerfile copies into the image: with the sources, they decide its content.
IMAGE_INPUTS = ("requirements/lock.txt", "setup.py", "README.md", "kubeflow/Dockerfile", "data")


@dataclasses.dataclass(frozen=True)
class CodeVersion:
    package_version: str
    git_commit: Optional[str]  # None when neither git nor BERTPIPE_GIT_COMMIT tells
    git_dirty: Optional[bool]  # uncommitted changes in the checkout; None without git
    source_hash: str  # sha256 (hex, 16 chars) of SOURCE_DIRS' files, by relative path

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "CodeVersion":
        return cls(**{f.name: values.get(f.name) for f in dataclasses.fields(cls)})


def image_tag(repo_root: str = REPO_ROOT) -> str:
    """The tag naming the image of this code: "code-" + sha256 (16 hex) of the source hash and
    of IMAGE_INPUTS' files. Equal tags, equal images: CI builds and pushes only a tag the
    registry does not have yet, so a commit that changes no code reuses the last image."""
    digest = hashlib.sha256(source_hash(repo_root).encode() + b"\0")
    paths = []
    for name in IMAGE_INPUTS:
        path = os.path.join(repo_root, name)
        if os.path.isdir(path):
            paths += sorted(os.path.join(d, f) for d, _, files in os.walk(path) for f in files)
        else:
            paths.append(path)
    for path in sorted(paths):
        digest.update(os.path.relpath(path, repo_root).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(f.read())
        digest.update(b"\0")
    return f"code-{digest.hexdigest()[:16]}"


def _git(repo_root: str, *args: str) -> Optional[str]:
    try:
        result = subprocess.run(["git", "-C", repo_root, *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def package_version() -> str:
    from importlib import metadata  # pylint: disable=import-outside-toplevel

    try:
        return metadata.version("bert-tfx-pipeline")
    except metadata.PackageNotFoundError:
        return "unknown"


def current(repo_root: str = REPO_ROOT, environ: Optional[dict] = None) -> CodeVersion:
    """The code version of the checkout (or image) at `repo_root`."""
    environ = os.environ if environ is None else environ
    commit = _git(repo_root, "rev-parse", "HEAD") if os.path.exists(os.path.join(repo_root, ".git")) else None
    dirty = None
    if commit:
        status = _git(repo_root, "status", "--porcelain", "--untracked-files=no", "--", *SOURCE_DIRS)
        dirty = bool(status) if status is not None else None
    else:
        commit = environ.get(GIT_COMMIT_ENV) or None
    return CodeVersion(package_version=package_version(), git_commit=commit, git_dirty=dirty,
                       source_hash=source_hash(repo_root))
