"""What code this is: a hash of the sources that determine a model, and how two versions differ.

Light (hashing only) and free of the pipeline's modules, so every place that runs the
project's code can check it against what a compiled spec records: the steps' containers
(kubeflow/code_check.py wraps their commands) and the replicas of a Vertex AI training job,
whose command TFX's training client sets (components/trainer/component.py checks there).
pipeline/code_version.py builds the full code version (package, commit, this hash) on it.
"""
from __future__ import annotations

import hashlib
import os
from typing import Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What determines a model: the components' code (data, BERT, trainer, evaluator) and the
# pipeline that wires them. Tests, benchmarks and docs do not.
SOURCE_DIRS = ("components", "pipeline", "kubeflow")
SOURCE_SUFFIXES = (".py", ".c", ".h", ".json")
# Set in a Vertex AI training job's containers: check the image's code against the spec's.
CHECK_CODE_ENV = "BERTPIPE_CHECK_CODE_VERSION"


def source_hash(repo_root: str = REPO_ROOT) -> str:
    """sha256 over (relative path, bytes) of every source file under SOURCE_DIRS, in sorted order."""
    digest = hashlib.sha256()
    paths = []
    for top in SOURCE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(repo_root, top)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            paths += [os.path.join(dirpath, f) for f in filenames if f.endswith(SOURCE_SUFFIXES)]
    for path in sorted(paths):
        digest.update(os.path.relpath(path, repo_root).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(f.read())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def mismatch(expected: dict, actual: dict) -> Optional[str]:
    """One line saying how the image's code differs from the spec's, or None if it is the same.

    The source hash, not the commit, is the identity: an image is reused for commits that
    change no code (docs, tests); both commits are printed."""
    if expected.get("source_hash") == actual.get("source_hash"):
        return None
    return (f"this image's code is not the spec's: image source_hash {actual.get('source_hash')} "
            f"(commit {actual.get('git_commit') or 'unknown'}), spec source_hash {expected.get('source_hash')} "
            f"(commit {expected.get('git_commit') or 'unknown'}); build the image from the spec's commit "
            f"(kubeflow/Dockerfile) or compile with the image of this code.")
