"""A private temporary directory for one local run, removed when the run ends.

TFX, Beam, TFMA and TensorFlow write temporary files (TFX's Beam executor alone built
an ~49 MB copy of the tfx package per Beam component and never deleted it). Pointing
the process's and its children's temp directory at a private one, removed afterwards,
keeps `$TMPDIR` as it was, whatever the libraries forget. A run killed before it could
remove its directory leaves it behind; the directory's name carries the owner's pid,
so the next run removes those whose owner is gone (`remove_stale`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from typing import Iterator, Optional

logger = logging.getLogger(__name__)

PREFIX = "bertpipe-run-"
_NAME = re.compile(rf"^{re.escape(PREFIX)}(\d+)-")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale(parent: Optional[str] = None) -> list[str]:
    """Removes private temp dirs of runs whose process is gone; returns their paths."""
    parent = parent or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        match = _NAME.match(name)
        path = os.path.join(parent, name)
        if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))) \
                and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            logger.info("Removed %s, the temporary directory of a run that was killed.", path)
            removed.append(path)
    return removed


@contextlib.contextmanager
def private_tmpdir() -> Iterator[str]:
    """Within the block, tempfile, TMPDIR (for child processes) point at a private directory."""
    parent = tempfile.gettempdir()
    remove_stale(parent)
    path = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent)
    saved_env, saved_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = path, path
    try:
        yield path
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        shutil.rmtree(path, ignore_errors=True)
