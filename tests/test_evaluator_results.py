"""Reading TFMA's evaluation files without TensorFlow: the files are written here with TFMA's own
proto classes and TensorFlow's TFRecordWriter (an independent writer), and read back with
components/evaluator/results.py, which imports neither."""
from __future__ import annotations

import json
import math
import os

import pytest
import tensorflow as tf
from tensorflow_model_analysis.proto import metrics_for_slice_pb2

from components.evaluator import results
from components.evaluator.names import BASELINE, CANDIDATE, METRIC_NAMES


def _entry(name: str, value: float, model: str = "", **key) -> metrics_for_slice_pb2.MetricsForSlice.MetricKeyAndValue:
    entry = metrics_for_slice_pb2.MetricsForSlice.MetricKeyAndValue()
    entry.key.name, entry.key.model_name = name, model
    for field, field_value in key.items():
        setattr(entry.key, field, field_value)
    entry.value.double_value.value = value
    return entry


def _write_evaluation(directory: str, models: dict[str, dict[str, float]]) -> str:
    """eval_config.json and one metrics file: the overall slice with `models`' values, their
    diffs, an aggregated variant, and a feature slice with other values (all decoys)."""
    os.makedirs(directory)
    with open(os.path.join(directory, "eval_config.json"), "w") as f:
        json.dump({"version": "0.47.1", "modelLocations": {name: f"/models/{name or 'only'}" for name in models}}, f)
    overall = metrics_for_slice_pb2.MetricsForSlice()
    for model, values in models.items():
        for name, value in values.items():
            overall.metric_keys_and_values.append(_entry(name, value, model, output_name="masked_lm"))
            overall.metric_keys_and_values.append(_entry(name, -1.0, model, is_diff=True))
    aggregated = _entry(METRIC_NAMES[0], -2.0, next(iter(models)))
    aggregated.key.aggregation_type.micro_average = True  # a variant under the same name
    overall.metric_keys_and_values.append(aggregated)
    sliced = metrics_for_slice_pb2.MetricsForSlice()
    single = sliced.slice_key.single_slice_keys.add()
    single.column, single.int64_value = "span", 3
    for model in models:
        sliced.metric_keys_and_values.extend(_entry(n, 99.0, model) for n in METRIC_NAMES)
    with tf.io.TFRecordWriter(os.path.join(directory, "metrics-00000-of-00001.tfrecord")) as writer:
        writer.write(sliced.SerializeToString())
        writer.write(overall.SerializeToString())
    return directory


def _values(base: float) -> dict[str, float]:
    return {name: base + i / 10 for i, name in enumerate(METRIC_NAMES)}


def test_single_model_overall_slice(tmp_path):
    evaluation = _write_evaluation(str(tmp_path / "e"), {"": _values(1.0)})
    assert results.read_eval_metrics(evaluation) == pytest.approx(_values(1.0))
    assert results.evaluated_models(evaluation) == [""]
    assert results.read_baseline_metrics(evaluation) is None


def test_candidate_and_baseline_are_told_apart(tmp_path):
    evaluation = _write_evaluation(str(tmp_path / "e"), {BASELINE: _values(2.0), CANDIDATE: _values(3.0)})
    assert results.evaluated_models(evaluation) == [CANDIDATE, BASELINE]
    assert results.read_eval_metrics(evaluation) == pytest.approx(_values(3.0))
    assert results.read_baseline_metrics(evaluation) == pytest.approx(_values(2.0))


def test_missing_metric_and_missing_file_are_one_line_errors(tmp_path):
    partial = _write_evaluation(str(tmp_path / "p"), {"": {METRIC_NAMES[0]: 0.5}})
    with pytest.raises(ValueError, match=r"lacks the metrics \['masked_lm_loss'"):
        results.read_eval_metrics(partial)
    os.makedirs(tmp_path / "empty")
    (tmp_path / "empty" / "eval_config.json").write_text('{"modelLocations": {"": "m"}}')
    with pytest.raises(ValueError, match=r"has no metrics-\*\.tfrecord file"):
        results.read_eval_metrics(str(tmp_path / "empty"))


def test_a_corrupt_record_is_refused(tmp_path):
    evaluation = _write_evaluation(str(tmp_path / "e"), {"": _values(1.0)})
    path = os.path.join(evaluation, "metrics-00000-of-00001.tfrecord")
    data = bytearray(open(path, "rb").read())
    data[20] ^= 0xFF  # a byte of the first record's payload
    open(path, "wb").write(bytes(data))
    with pytest.raises(ValueError, match="checksum mismatch"):
        results.read_eval_metrics(evaluation)


def test_nan_when_the_value_is_not_a_double(tmp_path):
    evaluation = _write_evaluation(str(tmp_path / "e"), {"": _values(1.0)})
    path = os.path.join(evaluation, "metrics-00000-of-00001.tfrecord")
    overall = metrics_for_slice_pb2.MetricsForSlice()
    for name in METRIC_NAMES:
        entry = overall.metric_keys_and_values.add()
        entry.key.name = name
        entry.value.bytes_value = b"not a number"
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(overall.SerializeToString())
    assert all(math.isnan(v) for v in results.read_eval_metrics(evaluation).values())


def test_a_remote_location_is_read_through_tensorflows_file_system(tmp_path):
    """gs:// evaluations (Vertex AI) go through tf.io.gfile; file:// takes the same path here."""
    evaluation = _write_evaluation(str(tmp_path / "e"), {"": _values(1.0)})
    assert results.read_eval_metrics(f"file://{evaluation}") == pytest.approx(_values(1.0))
