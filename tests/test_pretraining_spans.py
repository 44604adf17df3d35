"""Span patterns: {SPAN}/{VERSION} resolution for raw text and records (components/pretraining_data/spans.py)."""
from __future__ import annotations

import logging
import os

import pytest

from components.pretraining_data import spans
from pipeline.pipeline import split_span_pattern


def _touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("text\n")


def test_latest_span_and_its_newest_version(tmp_path):
    for span, version in [(1, 1), (2, 1), (2, 3), (10, 1), (10, 2)]:
        _touch(str(tmp_path / f"span-{span}" / f"v{version}" / "a.txt"))
    pattern = str(tmp_path / "span-{SPAN}" / "v{VERSION}" / "*.txt")
    found = spans.list_spans(pattern)
    assert [(s.number, s.version) for s in found] == [(1, 1), (2, 3), (10, 2)]  # numeric, not lexical
    assert found[-1].pattern == str(tmp_path / "span-10" / "v2" / "*.txt")
    assert spans.resolve(pattern, "first").number == 1


def test_a_gap_is_logged_and_the_newest_span_used(tmp_path, caplog):
    for span in (1, 2, 4):
        _touch(str(tmp_path / f"span-{span}" / "a.txt"))
    # bertpipe's configure_logging stops the project's loggers propagating to the root, where
    # caplog listens: listen on the module's logger itself.
    logger = logging.getLogger("components.pretraining_data.spans")
    logger.addHandler(caplog.handler)
    try:
        assert spans.latest_span(str(tmp_path / "span-{SPAN}" / "*.txt")).number == 4
    finally:
        logger.removeHandler(caplog.handler)
    assert "Spans [3]" in caplog.text


def test_pattern_matching_nothing_names_the_pattern(tmp_path):
    pattern = str(tmp_path / "span-{SPAN}" / "*.txt")
    with pytest.raises(ValueError, match="No file matches the span pattern .*span-\\{SPAN\\}"):
        spans.latest_span(pattern)


def test_empty_span_directory_does_not_count_as_a_span(tmp_path):
    _touch(str(tmp_path / "span-1" / "a.txt"))
    os.makedirs(tmp_path / "span-2")  # arrived empty: the newest span with text is 1
    assert spans.latest_span(str(tmp_path / "span-{SPAN}" / "*.txt")).number == 1


def test_version_without_span_is_refused(tmp_path):
    with pytest.raises(ValueError, match="VERSION.*no \\{SPAN\\}"):
        spans.list_spans(str(tmp_path / "v{VERSION}" / "*.txt"))


def test_plain_pattern_has_no_span():
    assert spans.resolve("/data/*.txt") is None


def test_records_layout_keeps_staging_directories_out_of_the_glob():
    assert spans.records_layout("c/span-{SPAN}/*.txt") == "span-{SPAN}/records"
    assert spans.records_layout("c/span-{SPAN}/v{VERSION}/*") == "span-{SPAN}/version-{VERSION}/records"
    assert spans.records_subdir("c/span-{SPAN}/*.txt", spans.Span(3, None, "")) == "span-3/records"


def test_examples_span_pattern_splits_into_input_base_and_split_prefix():
    assert split_span_pattern("/data/records/span-{SPAN}") == ("/data/records", "span-{SPAN}")
    assert split_span_pattern("gs://b/r/span-{SPAN}/v{VERSION}/") == ("gs://b/r", "span-{SPAN}/v{VERSION}")
