"""Publishing a SavedModel as `<base>/<version>/` so that it appears complete or not at all.

Anything that serves the newest version (TF Serving polls the base directory for numeric
subdirectories) must never see a half-copied one. TFX's stock Pusher copies straight into
`<base>/<version>/`; killed mid-copy it left a version holding only `fingerprint.pb`, the
newest version for good.

- Local filesystems: the model is copied to `<base>/.<version>.partial-<id>/` (a name a
  model server ignores), then renamed to `<base>/<version>/`: one atomic rename on the
  same filesystem.
- Object stores (gs://, s3://): there are no directories and no atomic rename (a "rename"
  is a copy of every object). The model is copied straight to `<base>/<version>/` with
  `saved_model.pb` last (a loader finds no model before it, as TF's own SavedModel writer
  and TFX's Pusher rely on), then a `PUSH_COMPLETE` marker object is written: a version is
  complete exactly when its marker exists, and consumers that can check should check it.

The next push removes the debris of interrupted ones: `.partial-` directories, and version
directories without `saved_model.pb` (a copy killed before its last file). Complete
versions are never overwritten or deleted; a version number already taken is skipped.
"""
from __future__ import annotations

import logging
import os
import posixpath
import time
import uuid

from tfx.dsl.io import fileio

logger = logging.getLogger(__name__)

SAVED_MODEL_FILE = "saved_model.pb"
COMPLETE_MARKER = "PUSH_COMPLETE"
PARTIAL_INFIX = ".partial-"
OBJECT_STORE_SCHEMES = ("gs://", "s3://")


def is_object_store(path: str) -> bool:
    return path.startswith(OBJECT_STORE_SCHEMES)


def _join(*parts: str) -> str:
    return posixpath.join(*parts) if is_object_store(parts[0]) else os.path.join(*parts)


def _entries(directory: str) -> list[str]:
    """Names directly under `directory`, without trailing slashes (object stores add them)."""
    if not fileio.exists(directory) and not fileio.isdir(directory):
        return []
    return sorted({name.rstrip("/") for name in fileio.listdir(directory)})


def _copy_tree(source: str, target: str, last: str = SAVED_MODEL_FILE) -> None:
    """Copies every file under `source` to `target`, the file named `last` at the top level last."""
    deferred = None
    for dirpath, _, filenames in fileio.walk(source):
        relative = dirpath[len(source.rstrip("/")):].strip("/")
        for name in filenames:
            name = name.rstrip("/")
            src = _join(dirpath, name)
            dst = _join(target, relative, name) if relative else _join(target, name)
            if not relative and name == last:
                deferred = (src, dst)
                continue
            fileio.makedirs(posixpath.dirname(dst) if is_object_store(dst) else os.path.dirname(dst))
            fileio.copy(src, dst, overwrite=True)
    if deferred is None:
        raise ValueError(f"{source} has no {last}: not a SavedModel, nothing pushed.")
    fileio.copy(*deferred, overwrite=True)


def remove_debris(base_directory: str) -> list[str]:
    """Removes what interrupted pushes left in `base_directory`; returns the removed paths."""
    removed = []
    for name in _entries(base_directory):
        path = _join(base_directory, name)
        incomplete_version = name.isdigit() and not fileio.exists(_join(path, SAVED_MODEL_FILE))
        if PARTIAL_INFIX in name or incomplete_version:
            fileio.rmtree(path)
            logger.warning("Removed %s, left by an interrupted push.", path)
            removed.append(path)
    return removed


def _next_free_version(base_directory: str, version: int) -> int:
    taken = {int(name) for name in _entries(base_directory) if name.isdigit()}
    while version in taken:
        version += 1
    return version


def publish(model_dir: str, base_directory: str, version: int | None = None) -> tuple[str, str]:
    """Publishes the SavedModel at `model_dir` as a new version under `base_directory`.

    Args:
      model_dir: a SavedModel directory (with saved_model.pb).
      base_directory: the serving directory (local path or gs://).
      version: the version number to start from (default: the Unix time, as TFX's Pusher).

    Returns:
      (version, path of the published version directory).
    """
    fileio.makedirs(base_directory)
    remove_debris(base_directory)
    version = _next_free_version(base_directory, version or int(time.time()))
    if is_object_store(base_directory):
        target = _join(base_directory, str(version))
        _copy_tree(model_dir, target)
        with fileio.open(_join(target, COMPLETE_MARKER), "w") as f:
            f.write(f"{model_dir}\n")
        return str(version), target
    staging = _join(base_directory, f".{version}{PARTIAL_INFIX}{uuid.uuid4().hex[:8]}")
    _copy_tree(model_dir, staging)
    with fileio.open(_join(staging, COMPLETE_MARKER), "w") as f:
        f.write(f"{model_dir}\n")
    for _ in range(100):
        target = _join(base_directory, str(version))
        try:
            fileio.rename(staging, target, overwrite=False)  # atomic; fails if the version exists
            return str(version), target
        except (OSError, fileio.NotFoundError) as e:  # another process took that version meanwhile
            if not fileio.exists(target):
                fileio.rmtree(staging)
                raise RuntimeError(f"Could not publish {staging} as {target}: {e}") from e
            version = _next_free_version(base_directory, version + 1)
    fileio.rmtree(staging)
    raise RuntimeError(f"No free version number under {base_directory} after 100 tries.")
