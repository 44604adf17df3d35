"""What a corpus was, for lineage: each matched file's path, size and sha256 of its bytes.

Recorded by VocabularyGen and PretrainingDataGen on their output artifacts (custom
property `corpus_files`, a JSON list), so ML-metadata (local or Vertex) says which
exact text made a vocabulary and its records, even after a glob matches other files
or a file is edited in place. The hash is over the stored bytes (a .gz file's
compressed bytes), read through Beam's filesystems so gs:// works as local paths do.
"""
from __future__ import annotations

import hashlib
import json
from typing import List, Sequence

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from components.pretraining_data.text_reader import expand_patterns

_READ_BYTES = 8 << 20
PROPERTY_NAME = "corpus_files"


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        while True:
            chunk = f.read(_READ_BYTES)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def describe_corpus(patterns: Sequence[str]) -> List[dict]:
    """[{"path", "size_bytes", "sha256"}] of every file the patterns match, sorted by path."""
    return [{"path": f.path, "size_bytes": f.size_bytes, "sha256": file_sha256(f.path)}
            for f in expand_patterns(patterns, option_name="corpus_pattern")]


def corpus_files_json(patterns: Sequence[str]) -> str:
    return json.dumps(describe_corpus(patterns), sort_keys=True)
