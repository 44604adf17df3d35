"""Whether pretraining records already published for a span can be used again.

PretrainingDataGen publishes a span's records by renaming a staged directory into place,
with a manifest naming the inputs. Records are generated again only if the inputs
changed: the text files (names, sizes, modification times, as TFX fingerprints
ImportExampleGen's input), the vocabulary's content and the data options. Reusing them
keeps their files, and so ImportExampleGen's `input_fingerprint`, identical across a
rerun after a kill: the Trainer then finds its own checkpoints again and resumes.
"""
from __future__ import annotations

import hashlib
import json
from typing import Optional, Sequence

INPUTS_KEY = "inputs_key"


def inputs_key(input_files: Sequence[str], vocab_file: str, options_json: str) -> str:
    """sha256 over the text files' (path, size, mtime), the vocabulary's bytes and the options."""
    import tensorflow as tf  # Deferred: gfile stats local and gs:// files alike.

    digest = hashlib.sha256()
    for path in sorted(input_files):
        stat = tf.io.gfile.stat(path)
        digest.update(f"{path}\0{stat.length}\0{stat.mtime_nsec}\n".encode())
    with tf.io.gfile.GFile(vocab_file, "rb") as f:
        digest.update(hashlib.sha256(f.read()).hexdigest().encode())
    digest.update(json.dumps(json.loads(options_json or "{}"), sort_keys=True).encode())
    return digest.hexdigest()


def published_manifest(output_dir: str, key: str, num_shards: int, manifest_name: str) -> Optional[dict]:
    """The manifest of records complete at `output_dir` for inputs `key`, else None.

    Complete means: the manifest names the same inputs and every shard of both splits is
    there (on an object store the publishing renames are not one atomic step).
    """
    import tensorflow as tf  # Deferred, as above.

    from components.pretraining_data.beam_job import shard_name

    path = f"{output_dir.rstrip('/')}/{manifest_name}"
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        manifest = json.load(f)
    if manifest.get(INPUTS_KEY) != key:
        return None
    shards = [f"{output_dir.rstrip('/')}/{shard_name(split, shard, num_shards)}"
              for split in ("train", "eval") for shard in range(num_shards)]
    return manifest if all(tf.io.gfile.exists(s) for s in shards) else None
