"""A rolling window of spans, as ImportExampleGen can read it: one directory per newest span.

ImportExampleGen reads a single span (its RollingRange allows num_spans=1 only), so a window
of the newest N spans is assembled as records of its own span, the newest:

    <records dir>/window-<N>/span-<newest>/records/train/span-<n>-part-*.tfrecord  (every span)
    <records dir>/window-<N>/span-<newest>/records/eval/span-<newest>-part-*.tfrecord

Training sees all N spans; evaluation, and so the baseline comparison, only the newest
span's eval split, where candidate and baseline are compared on data neither has trained on.
The directory is staged and renamed into place, with a manifest keyed by the spans' own
inputs keys, so an unchanged window is not assembled again.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
import uuid

from components.pretraining_data import beam_job

MANIFEST_NAME = "manifest.json"


def _key(span_keys: list[str]) -> str:
    return hashlib.sha256("\n".join(span_keys).encode()).hexdigest()


def _complete(window_dir: str, key: str) -> bool:
    import tensorflow as tf  # Deferred: gfile reads local and gs:// alike.

    path = f"{window_dir}/{MANIFEST_NAME}"
    if not tf.io.gfile.exists(path):
        return False
    with tf.io.gfile.GFile(path) as f:
        manifest = json.load(f)
    return manifest.get("inputs_key") == key and all(
        tf.io.gfile.exists(f"{window_dir}/{name}") for name in manifest.get("files", []))


def publish_window(span_dirs: list[str], span_numbers: list[int], span_keys: list[str], window_dir: str,
                   num_shards: int) -> tuple[dict, bool]:
    """Assembles the window from the spans' published records (oldest first).

    Returns:
      (stats: num_train_instances / num_eval_instances summed as described, reused).
    """
    import tensorflow as tf  # Deferred, as above.

    window_dir = window_dir.rstrip("/")
    key = _key(span_keys)
    manifests = []
    for span_dir in span_dirs:
        with tf.io.gfile.GFile(f"{span_dir}/{beam_job.MANIFEST_NAME}") as f:
            manifests.append(json.load(f))
    stats = {"num_train_instances": sum(m["stats"]["num_train_instances"] for m in manifests),
             "num_eval_instances": manifests[-1]["stats"]["num_eval_instances"]}
    if _complete(window_dir, key):
        return stats, True
    staging = f"{window_dir}.staging-{uuid.uuid4().hex[:12]}"
    files = []
    try:
        for i, (span_dir, number) in enumerate(zip(span_dirs, span_numbers)):
            splits = ("train", "eval") if i == len(span_dirs) - 1 else ("train",)
            for split in splits:
                for shard in range(num_shards):
                    name = beam_job.shard_name(split, shard, num_shards)
                    target = f"{split}/span-{number}-{posixpath.basename(name)}"
                    tf.io.gfile.makedirs(f"{staging}/{split}")
                    tf.io.gfile.copy(f"{span_dir}/{name}", f"{staging}/{target}", overwrite=True)
                    files.append(target)
        with tf.io.gfile.GFile(f"{staging}/{MANIFEST_NAME}", "w") as f:
            f.write(json.dumps({"inputs_key": key, "files": files, "spans": span_dirs, "stats": stats},
                               indent=2, sort_keys=True))
        beam_job._swap_into_place(staging, window_dir)  # pylint: disable=protected-access
    except BaseException:
        if tf.io.gfile.exists(staging):
            tf.io.gfile.rmtree(staging)
        raise
    return stats, False
