"""VocabularyGen and PretrainingDataGen on a {SPAN} corpus: the first span makes the vocabulary,
the newest span's records are written once and reused while their inputs are unchanged."""
from __future__ import annotations

import json
import os
import shutil

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from components.artifacts import PretrainingRecords, Vocabulary
from components.pretraining_data import component
from components.pretraining_data.options import PretrainingDataOptions

OPTIONS = PretrainingDataOptions(max_seq_length=32, max_predictions_per_seq=5, dupe_factor=1, num_shards=1,
                                 eval_fraction=0.2)


def _fn(comp):
    return comp.EXECUTOR_SPEC.executor_class._FUNCTION


def _artifact(cls, uri):
    artifact = cls()
    artifact.uri = str(uri)
    os.makedirs(artifact.uri, exist_ok=True)
    return artifact


def _generate(vocabulary, corpus_pattern, records_dir, uri):
    records = _artifact(PretrainingRecords, uri)
    _fn(component.PretrainingDataGen)(
        vocabulary=vocabulary, corpus_pattern=corpus_pattern, records_dir=records_dir,
        options_json=OPTIONS.to_json(), records=records,
        beam_pipeline=beam.Pipeline(options=PipelineOptions(["--direct_num_workers=1"])))
    return records


def _mtimes(directory):
    return {os.path.join(root, f): os.stat(os.path.join(root, f)).st_mtime_ns
            for root, _, files in os.walk(directory) for f in files}


def test_span_records_written_once_and_regenerated_when_inputs_change(corpus_spans, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(corpus_spans[0], corpus / "span-1")
    shutil.copytree(corpus_spans[1], corpus / "span-2")
    pattern = str(corpus / "span-{SPAN}" / "*.txt")
    vocabulary = _artifact(Vocabulary, tmp_path / "vocab")
    _fn(component.VocabularyGen)(corpus_pattern=pattern, vocab_size=300, do_lower_case=1, vocabulary=vocabulary)
    assert vocabulary.get_int_custom_property("span") == 1  # learned from the first span

    records_dir = str(tmp_path / "records")
    first = _generate(vocabulary, pattern, records_dir, tmp_path / "r1")
    span_dir = os.path.join(records_dir, "span-2", "records")
    assert first.get_int_custom_property("span") == 2
    assert first.get_string_custom_property("records_dir") == span_dir
    assert first.get_int_custom_property("reused") == 0
    assert not os.path.exists(os.path.join(records_dir, "span-1"))  # only the newest span
    written = _mtimes(span_dir)
    key_before = json.load(open(os.path.join(span_dir, "manifest.json")))["inputs_key"]

    again = _generate(vocabulary, pattern, records_dir, tmp_path / "r2")
    assert again.get_int_custom_property("reused") == 1
    assert _mtimes(span_dir) == written  # same files: ImportExampleGen's fingerprint stays
    assert again.get_int_custom_property("num_train_instances") == first.get_int_custom_property(
        "num_train_instances") > 0

    # New text in the span: generated again.
    with open(corpus / "span-2" / "part.txt", "a") as f:
        f.write("\nOne more document arrives.\nIt has two sentences.\n")
    changed = _generate(vocabulary, pattern, records_dir, tmp_path / "r3")
    assert changed.get_int_custom_property("reused") == 0
    assert json.load(open(os.path.join(span_dir, "manifest.json")))["inputs_key"] != key_before


def test_empty_newest_span_is_an_error_naming_its_files(corpus_spans, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(corpus_spans[0], corpus / "span-1")
    os.makedirs(corpus / "span-2")
    (corpus / "span-2" / "part.txt").write_text("\n\n")
    pattern = str(corpus / "span-{SPAN}" / "*.txt")
    vocabulary = _artifact(Vocabulary, tmp_path / "vocab")
    _fn(component.VocabularyGen)(corpus_pattern=pattern, vocab_size=300, do_lower_case=1, vocabulary=vocabulary)
    with pytest.raises(ValueError, match=r"span-2.*only blank lines"):
        _generate(vocabulary, pattern, str(tmp_path / "records"), tmp_path / "r")


def test_rolling_window_trains_on_the_newest_spans_and_evaluates_on_the_newest(corpus_spans, tmp_path):
    corpus = tmp_path / "corpus"
    for n, span_dir in enumerate(corpus_spans, start=1):
        shutil.copytree(span_dir, corpus / f"span-{n}")
    pattern = str(corpus / "span-{SPAN}" / "*.txt")
    vocabulary = _artifact(Vocabulary, tmp_path / "vocab")
    _fn(component.VocabularyGen)(corpus_pattern=pattern, vocab_size=300, do_lower_case=1, vocabulary=vocabulary)
    records_dir = str(tmp_path / "records")

    def window(uri):
        records = _artifact(PretrainingRecords, uri)
        _fn(component.PretrainingDataGen)(
            vocabulary=vocabulary, corpus_pattern=pattern, records_dir=records_dir, options_json=OPTIONS.to_json(),
            records=records, num_spans=2,
            beam_pipeline=beam.Pipeline(options=PipelineOptions(["--direct_num_workers=1"])))
        return records

    first = window(tmp_path / "w1")
    window_dir = os.path.join(records_dir, "window-2", "span-3", "records")
    assert first.get_string_custom_property("records_dir") == window_dir
    assert json.loads(first.get_string_custom_property("spans")) == [2, 3]
    assert first.get_int_custom_property("span") == 3
    assert sorted(os.listdir(os.path.join(window_dir, "train"))) == [
        "span-2-part-00000-of-00001.tfrecord", "span-3-part-00000-of-00001.tfrecord"]
    assert os.listdir(os.path.join(window_dir, "eval")) == ["span-3-part-00000-of-00001.tfrecord"]
    assert not os.path.exists(os.path.join(records_dir, "span-1"))  # outside the window
    per_span = [json.load(open(os.path.join(records_dir, f"span-{n}", "records", "manifest.json")))["stats"]
                for n in (2, 3)]
    assert first.get_int_custom_property("num_train_instances") == sum(s["num_train_instances"] for s in per_span)
    assert first.get_int_custom_property("num_eval_instances") == per_span[1]["num_eval_instances"]
    written = _mtimes(window_dir)
    again = window(tmp_path / "w2")
    assert again.get_int_custom_property("reused") == 1 and _mtimes(window_dir) == written
