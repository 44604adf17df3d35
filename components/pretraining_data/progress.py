"""Progress of a long data job: text read of the total, items made, and an ETA, logged at an interval.

The job's DoFns add to a `Progress` registered under an id (module state, so they find it
in the process that runs the pipeline: the DirectRunner's in_memory and multi_threading
modes, the defaults); a thread of the driver logs a line every `interval` seconds and a
last one at the end. Workers in other processes (multi_processing, Dataflow) do not reach
the driver's registry; there the jobs' Beam counters (namespace bertpipe.*) are the
progress, which Dataflow shows live on the job's page.

The fraction done is a weighted sum of the job's stages, each measured in bytes of text
(or items) through it; the ETA is elapsed * (1 - done) / done, an estimate that assumes
the rest goes at the pace so far.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from typing import Dict, Iterator, Optional

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 30.0
_JOBS: Dict[str, "Progress"] = {}
_LOCK = threading.Lock()


class Progress:
    """Thread-safe counters of one job.

    Args:
      label: the job's name in the log lines (e.g. "bertpipe vocab").
      total_bytes: bytes of text the job will read (the input files' sizes).
      stage_weights: {stage name: share of the job's time}, the reading stage first; each
        stage counts the bytes of text it has finished, and adds weight * bytes / total_bytes
        to the fraction done.
      item_name: the counter shown in the line, e.g. "instances_written" (shown with spaces).
    """

    def __init__(self, label: str, total_bytes: int, stage_weights: Dict[str, float], item_name: str):
        self.label = label
        self.total_bytes = max(1, int(total_bytes))
        self.stage_weights = dict(stage_weights)
        self.item_name = item_name
        self.stage_bytes = {name: 0 for name in stage_weights}
        self.counters: Dict[str, int] = {item_name: 0}
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def add(self, stage: Optional[str] = None, num_bytes: int = 0, **counters: int) -> None:
        with self._lock:
            if stage is not None:
                self.stage_bytes[stage] = self.stage_bytes.get(stage, 0) + int(num_bytes)
            for name, value in counters.items():
                self.counters[name] = self.counters.get(name, 0) + int(value)

    def stage_fractions(self) -> Dict[str, float]:
        """{stage: share of the text it has finished}, each in [0, 1]."""
        with self._lock:
            return {s: min(1.0, self.stage_bytes[s] / self.total_bytes) for s in self.stage_weights}

    def fraction_done(self) -> float:
        fractions = self.stage_fractions()
        total_weight = sum(self.stage_weights.values()) or 1.0
        return sum(w * fractions[s] for s, w in self.stage_weights.items()) / total_weight

    def line(self, now: Optional[float] = None) -> str:
        """One progress line: MB read of the total, the item counter, elapsed time and ETA."""
        now = time.monotonic() if now is None else now
        elapsed = now - self.started
        done = self.fraction_done()
        first = next(iter(self.stage_weights))
        with self._lock:
            read_mb, items = self.stage_bytes[first] / 1e6, self.counters.get(self.item_name, 0)
        eta = clock(elapsed * (1 - done) / done) if done >= 0.001 else "unknown"
        return (f"{self.label}: read {read_mb:,.1f} of {self.total_bytes / 1e6:,.1f} MB, {items:,} "
                f"{self.item_name.replace('_', ' ')}, {done:.0%} done, {clock(elapsed)} elapsed, ETA {eta}")


def clock(seconds: float) -> str:
    seconds = int(round(max(0.0, seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def add(job_id: str, stage: Optional[str] = None, num_bytes: int = 0, **counters: int) -> None:
    """Adds to the registered job `job_id`; a no-op where it is not registered (another process)."""
    progress = _JOBS.get(job_id)
    if progress is not None:
        progress.add(stage, num_bytes, **counters)


@contextlib.contextmanager
def reporting(progress: Progress, interval: float = DEFAULT_INTERVAL_SECONDS) -> Iterator[str]:
    """Registers `progress` for the block (yields its id for the DoFns) and logs its line every
    `interval` seconds from a daemon thread, and once more at the end."""
    job_id = uuid.uuid4().hex
    with _LOCK:
        _JOBS[job_id] = progress
    stop = threading.Event()

    def report():
        while not stop.wait(interval):
            logger.info("%s", progress.line())

    thread = threading.Thread(target=report, name=f"progress-{job_id[:8]}", daemon=True)
    thread.start()
    try:
        yield job_id
    finally:
        stop.set()
        thread.join()
        with _LOCK:
            _JOBS.pop(job_id, None)
        logger.info("%s", progress.line())

