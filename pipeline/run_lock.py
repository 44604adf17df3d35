"""One local run at a time per output location: a second `bertpipe run` is refused at once.

Two runs on the same output directory share the ML-metadata store, the checkpoint
directory (its name is a hash of the configuration, so that a rerun after a kill
resumes) and the pretraining records. Run side by side they overwrite each other's
checkpoints and one can publish the other's records. Isolating them would mean a
private checkpoint directory per run, which gives up resume-after-kill, the reason the
directory is shared. So a run takes an exclusive lock on each location it writes, and a
second run is refused with the holder's process id and command, and what to do.

The lock is `fcntl.flock` on a small file: the kernel releases it when the holding
process exits, however it exits (kill -9 included), so a killed run never leaves a
stale lock. It guards local paths only; runs on Vertex AI are separate PipelineJobs.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import sys
from typing import Iterator, Sequence

LOCK_SUFFIX = ".bertpipe-run.lock"
# Lock files this process holds, with how many nested hold() blocks hold each: flock locks
# belong to an open file, so a second flock by the same process on a new descriptor would
# refuse the process itself (the CLI locks before run_local, which locks again).
_HELD: dict[str, int] = {}
_FDS: dict[str, int] = {}


class RunInProgressError(ValueError):
    """Another bertpipe run holds the lock of an output location."""


def lock_path_for(location: str) -> str:
    """The lock file guarding `location` (a directory or a file, existing or not): a sibling,
    so the same path whether or not the location exists yet."""
    return os.path.abspath(location).rstrip(os.sep) + LOCK_SUFFIX


def _describe_holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            holder = json.load(f)
        return f"pid {holder['pid']}, started {holder['started']}: {holder['command']}"
    except (OSError, ValueError, KeyError):
        return "process unknown"


@contextlib.contextmanager
def hold(locations: Sequence[str]) -> Iterator[None]:
    """Holds an exclusive lock on every location for the duration of the block.

    Raises:
      RunInProgressError: another process holds one of the locks (nothing was changed).
    """
    held = []
    try:
        for location in dict.fromkeys(os.path.abspath(loc) for loc in locations):
            path = lock_path_for(location)
            if path in _HELD:
                _HELD[path] += 1
                held.append(path)
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                raise RunInProgressError(
                    f"another bertpipe run is using {location} ({_describe_holder(path)}); wait for it to "
                    f"finish, or give this run its own --output_dir (or --pipeline_root / --metadata_path)."
                ) from None
            holder = {"pid": os.getpid(), "started": datetime.datetime.now().isoformat(timespec="seconds"),
                      "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
            _HELD[path] = 1
            _FDS[path] = fd
            held.append(path)
        yield
    finally:
        for path in held:
            _HELD[path] -= 1
            if _HELD[path]:
                continue
            del _HELD[path]
            fd = _FDS.pop(path)
            os.ftruncate(fd, 0)  # the file stays (removing it would race with a waiting run); its lock goes
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
