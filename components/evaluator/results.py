"""Reading the Evaluator's figures back: the four do_eval metrics of the overall slice.

TFMA writes an evaluation as `eval_config.json` (JSON: which models were evaluated) and
`metrics-*.tfrecord` (TFRecords of MetricsForSlice protos). Both formats are simple, so they
are read here without TensorFlow or TFMA: `bertpipe lineage` and the run summaries answer in
well under a second instead of importing TensorFlow for a few numbers. The MetricsForSlice
message class is built from the descriptor TFMA itself ships (its generated
metrics_for_slice_pb2.py), in a private descriptor pool, so the schema is TFMA's own and the
TFMA package is never imported. Remote locations (gs://) are opened with tf.io.gfile, which
is imported only then.
"""
from __future__ import annotations

import ast
import functools
import glob
import importlib.util
import json
import math
import os
import struct
from typing import Iterator, Optional

from components.evaluator.names import BASELINE, CANDIDATE, METRIC_NAMES

EVAL_CONFIG_FILE = "eval_config.json"
METRICS_PATTERN = "metrics-*.tfrecord"  # TFMA's default output_file_format is tfrecord
_METRICS_PB2 = os.path.join("proto", "metrics_for_slice_pb2.py")


def _is_remote(path: str) -> bool:
    return "://" in path


def _read_bytes(path: str) -> bytes:
    if _is_remote(path):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel  # Deferred: only for gs:// and the like.

        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def _glob(pattern: str) -> list[str]:
    if _is_remote(pattern):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        return sorted(tf.io.gfile.glob(pattern))
    return sorted(glob.glob(pattern))


def _masked_crc(data: bytes) -> Optional[int]:
    """TFRecord's masked CRC32-C of `data` (None if google-crc32c is not installed)."""
    try:
        import google_crc32c  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecords(path: str) -> Iterator[bytes]:
    """The records of one TFRecord file: each is uint64 length, uint32 masked CRC of the
    length, the bytes, uint32 masked CRC of the bytes (little-endian).

    Raises:
      ValueError: the file is truncated or a checksum does not match.
    """
    data, offset = _read_bytes(path), 0
    while offset < len(data):
        if offset + 12 > len(data):
            raise ValueError(f"{path}: truncated TFRecord header at byte {offset}")
        header = data[offset:offset + 8]
        (length,), (length_crc,) = struct.unpack("<Q", header), struct.unpack("<I", data[offset + 8:offset + 12])
        start, end = offset + 12, offset + 12 + length
        if end + 4 > len(data):
            raise ValueError(f"{path}: truncated TFRecord at byte {offset}")
        record = data[start:end]
        (record_crc,) = struct.unpack("<I", data[end:end + 4])
        for what, crc, expected in (("length", length_crc, header), ("record", record_crc, record)):
            computed = _masked_crc(expected)
            if computed is not None and computed != crc:
                raise ValueError(f"{path}: TFRecord {what} checksum mismatch at byte {offset}")
        yield record
        offset = end + 4


@functools.lru_cache(maxsize=1)
def _metrics_for_slice_class():
    """tensorflow_model_analysis.MetricsForSlice, built from the serialized file descriptor in
    TFMA's generated module (found without importing the package, whose __init__ imports TF)."""
    from google.protobuf import descriptor_pool, message_factory, wrappers_pb2  # pylint: disable=import-outside-toplevel

    spec = importlib.util.find_spec("tensorflow_model_analysis")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("tensorflow-model-analysis is not installed: it defines the evaluation's file format.")
    source_path = os.path.join(list(spec.submodule_search_locations)[0], _METRICS_PB2)
    with open(source_path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), source_path)
    [serialized] = [ast.literal_eval(node.args[0]) for node in ast.walk(tree)
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "AddSerializedFile"]
    pool = descriptor_pool.DescriptorPool()  # private: TFMA's own import later registers its copy in the default pool
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(serialized)
    descriptor = pool.FindMessageTypeByName("tensorflow_model_analysis.MetricsForSlice")
    if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.21
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


def evaluated_models(evaluation_uri: str) -> list[str]:
    """The model names in a ModelEvaluation: [""] alone, or ["candidate", "baseline"] when
    the run compared the candidate with a baseline (eval_config.json's modelLocations)."""
    path = f"{evaluation_uri.rstrip('/')}/{EVAL_CONFIG_FILE}"
    try:
        model_locations = json.loads(_read_bytes(path)).get("modelLocations", {})
    except FileNotFoundError:
        raise ValueError(f"The evaluation at {evaluation_uri} has no {EVAL_CONFIG_FILE}.") from None
    return sorted(model_locations, key=lambda name: (name != CANDIDATE, name))


def read_eval_metrics(evaluation_uri: str, model_name: Optional[str] = None) -> dict[str, float]:
    """{masked_lm_accuracy, masked_lm_loss, next_sentence_accuracy, next_sentence_loss} of a
    ModelEvaluation artifact (the overall slice), as tfma.load_eval_result reports them.

    Args:
      evaluation_uri: the ModelEvaluation artifact's uri (TFMA's output path).
      model_name: which model's metrics when the evaluation compared two ("baseline"); by
        default the candidate (the only model when there was no baseline).

    Raises:
      ValueError: no metrics file, or a metric is missing from the evaluation.
    """
    if model_name is None:
        model_name = CANDIDATE if CANDIDATE in evaluated_models(evaluation_uri) else ""
    paths = _glob(f"{evaluation_uri.rstrip('/')}/{METRICS_PATTERN}")
    if not paths:
        raise ValueError(f"The evaluation at {evaluation_uri} has no {METRICS_PATTERN} file.")
    message_class = _metrics_for_slice_class()
    found: dict[str, float] = {}
    for path in paths:
        for record in tfrecords(path):
            metrics = message_class.FromString(record)
            # The overall slice: an empty slice key, not a cross-slice comparison.
            if metrics.slice_key.single_slice_keys or metrics.HasField("cross_slice_key"):
                continue
            for entry in metrics.metric_keys_and_values:
                key = entry.key
                # A comparison's diff (candidate - baseline) and aggregated variants share the
                # metric's name; TFMA's view names them NAME_diff / TYPE_NAME, so they are not it.
                if (key.model_name != model_name or key.is_diff or key.HasField("aggregation_type")
                        or key.name not in METRIC_NAMES):
                    continue
                value = entry.value
                found[key.name] = value.double_value.value if value.HasField("double_value") else math.nan
    missing = [name for name in METRIC_NAMES if name not in found]
    if missing:
        raise ValueError(f"The evaluation at {evaluation_uri} lacks the metrics {missing}.")
    return {name: found[name] for name in METRIC_NAMES}


def read_baseline_metrics(evaluation_uri: str) -> Optional[dict[str, float]]:
    """The baseline's metrics of a ModelEvaluation, or None if it had no baseline."""
    if BASELINE not in evaluated_models(evaluation_uri):
        return None
    return read_eval_metrics(evaluation_uri, model_name=BASELINE)
