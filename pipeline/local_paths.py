"""Where a local run writes, and which of those places a run must have to itself.

Light on purpose (no TFX, no TensorFlow): the CLI takes the run lock on these places
before it imports the pipeline, so a second run is refused in a second, not after the
imports.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional


@dataclasses.dataclass(frozen=True)
class LocalPaths:
    pipeline_root: str
    metadata_path: str
    serving_model_dir: str

    @classmethod
    def under(cls, output_dir: str, pipeline_root: Optional[str] = None, metadata_path: Optional[str] = None,
              serving_model_dir: Optional[str] = None) -> "LocalPaths":
        output_dir = os.path.abspath(output_dir)
        return cls(pipeline_root=os.path.abspath(pipeline_root or os.path.join(output_dir, "tfx_root")),
                   metadata_path=os.path.abspath(metadata_path or os.path.join(output_dir, "metadata.sqlite")),
                   serving_model_dir=os.path.abspath(serving_model_dir or os.path.join(output_dir, "serving_model")))


def locked_locations(paths: LocalPaths, metadata_in_mysql: bool = False) -> list[str]:
    """The places two runs must not share: the ML-metadata store (unless MySQL keeps it,
    which is shared by design) and the pipeline root (records, checkpoints, artifacts)."""
    return [paths.pipeline_root] if metadata_in_mysql else [paths.metadata_path, paths.pipeline_root]
