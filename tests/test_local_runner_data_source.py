"""The local entry point's early checks of the data source (pipeline/local_runner.check_data_source)."""
from __future__ import annotations

import pytest

from pipeline.config import PipelineConfig
from pipeline.input_checks import examples_are_presplit
from pipeline.local_runner import check_data_source


def test_examples_span_pattern_resolves_to_the_newest_span_directory(tmp_path):
    for span in (1, 2):
        for split in ("train", "eval"):
            (tmp_path / f"span-{span}" / split).mkdir(parents=True)
            (tmp_path / f"span-{span}" / split / "part-0.tfrecord").write_bytes(b"")
    config = PipelineConfig(examples_dir=str(tmp_path / "span-{SPAN}"), corpus_pattern="", vocab_file="v.txt")
    resolved = check_data_source(config)
    assert resolved.examples_dir == str(tmp_path / "span-2")
    assert examples_are_presplit(resolved.examples_dir)


def test_corpus_span_pattern_matching_nothing_is_refused_naming_it(tmp_path):
    config = PipelineConfig(corpus_pattern=str(tmp_path / "span-{SPAN}" / "*.txt"))
    with pytest.raises(ValueError, match="No file matches the span pattern"):
        check_data_source(config)


def test_plain_examples_directory_that_is_missing_is_refused(tmp_path):
    config = PipelineConfig(examples_dir=str(tmp_path / "missing"), corpus_pattern="", vocab_file="v.txt")
    with pytest.raises(ValueError, match="--examples .*missing is not a directory"):
        check_data_source(config)
