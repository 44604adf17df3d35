"""How fast training goes and how long it will take: rates, ETAs and when to say so.

The training loop feeds a `ProgressMeter` after every compiled chunk of steps (step reached,
examples and real tokens trained on, seconds the chunk took); the meter keeps the rates and
decides when a progress report is due (every `interval_seconds`, and at the end of the
phase). Rates and ETAs exclude the first chunk of the process, which carries the tracing
(and XLA compilation) and would make every ETA too long.

A chunk of many steps runs as one call, during which nothing can be logged, so the loop also
asks `chunk_steps` how many steps fit in one interval at the measured pace: reports then come
at least once per interval whatever --iterations_per_loop is (the step maths do not depend on
how steps are grouped into calls).

Pure Python, no TensorFlow: tests drive it with a fake clock.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional


@dataclasses.dataclass(frozen=True)
class ProgressReport:
    """One progress line's figures.

    Attributes:
      phase: the phase's name (e.g. "phase1").
      step, phase_steps: the global step reached and the step the phase ends at.
      examples_per_sec, tokens_per_sec: over the steps since the first chunk (real tokens:
        input_mask ones, never padding).
      eta_phase_seconds, eta_run_seconds: time left in this phase, and in the whole run
        (this phase plus `later_steps` at this phase's pace times `later_step_cost`).
      final: the phase has ended.
    """

    phase: str
    step: int
    phase_steps: int
    examples_per_sec: float
    tokens_per_sec: float
    eta_phase_seconds: float
    eta_run_seconds: float
    final: bool = False

    def line(self) -> str:
        percent = 100.0 * self.step / max(self.phase_steps, 1)
        return (f"progress {self.phase}: step {self.step}/{self.phase_steps} ({percent:.1f}%)  "
                f"{self.examples_per_sec:.1f} examples/s  {self.tokens_per_sec:,.0f} tokens/s  "
                f"ETA {self.phase} {format_duration(self.eta_phase_seconds)}  "
                f"ETA run {format_duration(self.eta_run_seconds)}")

    def scalars(self) -> dict[str, float]:
        """TensorBoard scalars (under train/), the same figures as the line."""
        return {"examples_per_sec": self.examples_per_sec, "tokens_per_sec": self.tokens_per_sec,
                "eta_phase_seconds": self.eta_phase_seconds, "eta_run_seconds": self.eta_run_seconds}


def format_duration(seconds: float) -> str:
    """3725.2 -> '1:02:05'; a day or more -> '2d 03:00:00'; unknown (nan) -> '?'."""
    if not math.isfinite(seconds):
        return "?"
    total = int(round(max(seconds, 0.0)))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}" if days else clock


class ProgressMeter:
    """Rates and ETAs of one phase, fed chunk by chunk.

    Args:
      phase: the phase's name.
      phase_steps: the global step at which this phase ends (num_train_steps).
      interval_seconds: a report is due when this much time passed since the last one
        (0: after every chunk).
      later_steps: steps of the phases after this one (0 when it is the last).
      later_step_cost: a later step's time relative to one of this phase (say 4-5 for
        sequence length 512 after 128); used only for the run's ETA.
      now: the time the phase started (seconds, any monotonic clock).
    """

    def __init__(self, phase: str, phase_steps: int, interval_seconds: float, now: float,
                 later_steps: int = 0, later_step_cost: float = 1.0):
        if interval_seconds < 0:
            raise ValueError(f"progress interval must be >= 0 seconds, got {interval_seconds}")
        self.phase = phase
        self.phase_steps = phase_steps
        self.interval_seconds = interval_seconds
        self.later_steps = later_steps
        self.later_step_cost = later_step_cost
        self._last_report = now
        self._chunks = 0
        # Totals over the chunks after the first (the first carries tracing).
        self._steps = 0
        self._examples = 0.0
        self._tokens = 0.0
        self._seconds = 0.0
        self._first_seconds_per_step = math.nan

    def seconds_per_step(self) -> float:
        """The measured pace: after the first chunk, its steps only; nan before any chunk."""
        if self._steps:
            return self._seconds / self._steps
        return self._first_seconds_per_step

    def update(self, step: int, num_steps: int, examples: float, tokens: float, seconds: float,
               now: float) -> Optional[ProgressReport]:
        """Records a chunk of `num_steps` steps ending at global `step`; returns a report when due."""
        self._chunks += 1
        if self._chunks == 1:
            self._first_seconds_per_step = seconds / max(num_steps, 1)
            first = (examples / seconds if seconds > 0 else math.nan,
                     tokens / seconds if seconds > 0 else math.nan)
        else:
            self._steps += num_steps
            self._examples += examples
            self._tokens += tokens
            self._seconds += seconds
        final = step >= self.phase_steps
        if not final and now - self._last_report < self.interval_seconds:
            return None
        self._last_report = now
        if self._steps:
            examples_per_sec = self._examples / self._seconds if self._seconds > 0 else math.nan
            tokens_per_sec = self._tokens / self._seconds if self._seconds > 0 else math.nan
        else:
            examples_per_sec, tokens_per_sec = first
        pace = self.seconds_per_step()
        eta_phase = max(self.phase_steps - step, 0) * pace
        eta_run = eta_phase + self.later_steps * self.later_step_cost * pace
        return ProgressReport(self.phase, step, self.phase_steps, examples_per_sec, tokens_per_sec,
                              eta_phase, eta_run, final)

    def chunk_steps(self, wanted: int) -> int:
        """How many of `wanted` steps to run in the next call so that it ends within one
        interval at the measured pace (at least 1). The first call runs one step: it traces
        (and compiles) the step, and its time gives a first pace."""
        if self.interval_seconds <= 0:
            return wanted
        pace = self.seconds_per_step()
        if not math.isfinite(pace) or pace <= 0:
            return 1
        return max(1, min(wanted, int(self.interval_seconds / pace)))
