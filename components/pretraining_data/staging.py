"""Names of the data job's staging directories, and removal of those that killed runs left.

The job writes under `<output_dir>.staging-<pid>@<host>-<id>` and renames that into place
at the end; a failing job deletes it, but a killed one (SIGKILL, a lost machine) cannot.
The owner's pid and host in the name let the next run tell a dead run's directory (same
host, pid gone: removed, with a log line) from a running one's (left alone). Directories
it cannot judge (another host's, or named without an owner) are reported, not removed.
Local paths only: on object stores the job's own clean-up applies.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import socket
import uuid

logger = logging.getLogger(__name__)

_OWNED = re.compile(r"\.staging-(\d+)@(.+)-[0-9a-f]{12}$")


def new_staging_dir(output_dir: str) -> str:
    return f"{output_dir}.staging-{os.getpid()}@{socket.gethostname()}-{uuid.uuid4().hex[:12]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(output_dir: str) -> list[str]:
    """Removes staging directories of `output_dir` whose run is gone; returns their paths."""
    if "://" in output_dir:
        return []
    removed = []
    for path in sorted(glob.glob(f"{glob.escape(output_dir.rstrip('/'))}.staging-*")):
        match = _OWNED.search(path)
        if match and match.group(2) == socket.gethostname() and not _pid_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            logger.warning("Removed %s, the staging directory of a data job that was killed.", path)
            removed.append(path)
        elif not match:
            logger.warning("%s looks like the staging directory of an interrupted data job (its owner is "
                           "unknown): delete it if no job is writing %s.", path, output_dir)
    return removed
