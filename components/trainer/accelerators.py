"""What accelerator a training job was compiled for, told to its replicas (no TensorFlow here).

`bertpipe compile --trainer_gpu/--trainer_tpu` puts BERTPIPE_EXPECTED_ACCELERATOR into the
Vertex AI CustomJob's container environment (pipeline/vertex_resources.py), e.g.
"NVIDIA_TESLA_V100:4" or "TPU_V5_LITEPOD:4" (Vertex AI's AcceleratorType name and the count
per machine). The trainer's strategy choice (strategy.py) reads it: a job paid for with
accelerators that finds none fails at once instead of training on the CPU.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

EXPECTED_ACCELERATOR_ENV = "BERTPIPE_EXPECTED_ACCELERATOR"


class AcceleratorNotFound(ValueError):
    """A TPU or GPUs were asked for and are not there (one line: what was expected, what was found)."""


@dataclasses.dataclass(frozen=True)
class ExpectedAccelerator:
    accelerator_type: str  # Vertex AI's AcceleratorType name, e.g. NVIDIA_TESLA_V100, TPU_V5_LITEPOD
    count: int  # per machine

    @property
    def is_tpu(self) -> bool:
        return self.accelerator_type.startswith("TPU_")

    def to_env(self) -> str:
        return f"{self.accelerator_type}:{self.count}"

    def describe(self) -> str:
        return f"{self.count} x {self.accelerator_type}"


def expected_accelerator(environ: Mapping[str, str]) -> Optional[ExpectedAccelerator]:
    """The accelerator the job was compiled for (None: none, e.g. a local run or a CPU job)."""
    value = environ.get(EXPECTED_ACCELERATOR_ENV)
    if not value:
        return None
    kind, sep, count = value.partition(":")
    if not kind or not sep or not count.isdigit() or int(count) < 1:
        raise ValueError(f"{EXPECTED_ACCELERATOR_ENV}={value!r}: expected TYPE:COUNT, e.g. NVIDIA_TESLA_V100:4")
    return ExpectedAccelerator(kind, int(count))
