"""TFX components: VocabularyGen (corpus -> vocab.txt) and PretrainingDataGen (-> TFRecords).

Thin wrappers: they unpack artifacts and call vocab.learn_vocabulary and
beam_job.run_prepare_data, which the tests drive directly. The decorated
functions stay reachable for tests as
`VocabularyGen.EXECUTOR_SPEC.executor_class._FUNCTION`.

A Beam component declares `beam_pipeline: BeamComponentParameter[beam.Pipeline] = None`
(use_beam=True), which TFX fills with a pipeline built from the pipeline's
beam_pipeline_args. PretrainingDataGen
builds its job on that pipeline and runs it itself, so it can stage the output
and rename it into place after the run.

Spans: with `{SPAN}` in the corpus pattern, VocabularyGen learns from the first (oldest)
span, so every later span is tokenised with the same vocabulary and a model can keep
training on new spans; PretrainingDataGen writes the newest span's records to
`records_dir/span-<n>/records`, where ImportExampleGen finds the newest span itself.
Records already published for the same inputs are not generated again.
"""
import dataclasses
import json
import logging
import os

import apache_beam as beam
from tfx.dsl.component.experimental.annotations import (BeamComponentParameter, InputArtifact, OutputArtifact,
                                                        Parameter)
from tfx.dsl.component.experimental.decorators import component

from components.artifacts import PretrainingRecords, Vocabulary, vocabulary_file
from components.pretraining_data import beam_job, corpus_files, records_reuse, span_window, spans, text_reader
from components.pretraining_data import vocab as vocab_lib
from components.pretraining_data.options import PretrainingDataOptions

# The pipeline's corpus_pattern is set by `bertpipe run/compile --corpus`: errors about it
# name that flag, not prepare-data's --input_file.
CORPUS_FLAG = "--corpus"


@component(use_beam=True)
def VocabularyGen(  # pylint: disable=invalid-name
        corpus_pattern: Parameter[str],
        vocab_size: Parameter[int],
        do_lower_case: Parameter[int],
        vocabulary: OutputArtifact[Vocabulary],
        beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
        code_version: Parameter[str] = "") -> None:
    """Learns a WordPiece vocabulary from `corpus_pattern` (comma-separated files/globs; with
    {SPAN}, its first span): its words counted by a Beam job on the pipeline's
    beam_pipeline_args (DirectRunner locally, Dataflow at scale), over the whole corpus.

    code_version: pipeline.code_version.CodeVersion as JSON; an execution property, so
    ML-metadata records which code made the vocabulary.
    """
    del code_version  # Recorded by TFX as an execution property; nothing to compute from it.
    path = os.path.join(vocabulary.uri, Vocabulary.FILE_NAME)
    first = spans.resolve(corpus_pattern, which="first")
    patterns = [first.pattern] if first else text_reader.split_patterns(corpus_pattern)
    size = vocab_lib.learn_vocabulary(patterns, path, vocab_size, bool(do_lower_case), input_flag=CORPUS_FLAG,
                                      pipeline=beam_pipeline)
    if first:
        vocabulary.set_int_custom_property("span", first.number)
    vocabulary.set_int_custom_property("vocab_size", size)
    vocabulary.set_int_custom_property("do_lower_case", int(bool(do_lower_case)))
    vocabulary.set_string_custom_property("sha256", corpus_files.file_sha256(path))
    vocabulary.set_string_custom_property(corpus_files.PROPERTY_NAME, corpus_files.corpus_files_json(patterns))


@component(use_beam=True)
def PretrainingDataGen(  # pylint: disable=invalid-name
        vocabulary: InputArtifact[Vocabulary],
        corpus_pattern: Parameter[str],
        records_dir: Parameter[str],
        options_json: Parameter[str],
        records: OutputArtifact[PretrainingRecords],
        num_spans: Parameter[int] = 1,
        beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
        code_version: Parameter[str] = "") -> None:
    """Writes records_dir/{train,eval}/part-*.tfrecord (with {SPAN} in corpus_pattern: the
    newest span's, under records_dir/span-<n>/records/) and a manifest.json in the artifact;
    records already published there for the same inputs are reused, not written again.

    num_spans: with {SPAN}, a rolling window of the newest `num_spans` spans: each span's
      records are made (once) as above, and records_dir/window-<N>/span-<newest>/records/
      gets all of their train shards and the newest span's eval shards (see span_window.py).
    options_json: PretrainingDataOptions.to_json(); "" means the defaults. Its
    do_lower_case must match the vocabulary's.
    code_version: as VocabularyGen's (recorded as an execution property).
    """
    del code_version  # Recorded by TFX as an execution property.
    options = PretrainingDataOptions.from_json(options_json or "{}")
    # Unset on vocabularies imported from elsewhere: then there is nothing to check.
    vocab_lower = (vocabulary.get_int_custom_property("do_lower_case")
                   if vocabulary.has_custom_property("do_lower_case") else None)
    if vocab_lower is not None and bool(vocab_lower) != options.do_lower_case:
        raise ValueError(
            f"options_json do_lower_case={options.do_lower_case} but the Vocabulary at "
            f"{vocabulary.uri} was learnt with do_lower_case={bool(vocab_lower)}; use the same.")
    vocab_file = vocabulary_file(vocabulary.uri)
    if not spans.has_span(corpus_pattern):
        if num_spans != 1:
            raise ValueError(f"num_spans {num_spans} needs a corpus pattern with {{SPAN}}, got {corpus_pattern}")
        selected = []
        result = _publish_records(text_reader.split_patterns(corpus_pattern), records_dir, vocab_file, options,
                                  beam_pipeline)
        output_dir, stats, reused, files = result.directory, result.stats, result.reused, result.input_files
    else:
        selected = spans.list_spans(corpus_pattern)[-num_spans:]
        if len(selected) < num_spans:
            logging.info("Only %d span(s) of %s exist; the window of %d uses them all.", len(selected),
                         corpus_pattern, num_spans)
        per_span = []
        for i, span in enumerate(selected):
            span_dir = f"{records_dir.rstrip('/')}/{spans.records_subdir(corpus_pattern, span)}"
            # A Beam pipeline runs once: the first span may use TFX's, the others get their own.
            pipeline = beam_pipeline if i == 0 or beam_pipeline is None else beam.Pipeline(
                options=beam_pipeline.options)
            per_span.append(_publish_records([span.pattern], span_dir, vocab_file, options, pipeline))
        newest = per_span[-1]
        output_dir, stats, reused, files = newest.directory, newest.stats, newest.reused, newest.input_files
        if num_spans > 1:
            output_dir = (f"{records_dir.rstrip('/')}/{spans.window_subdir(num_spans)}/"
                          f"{spans.records_subdir(corpus_pattern, selected[-1])}")
            stats, reused = span_window.publish_window(
                [r.directory for r in per_span], [s.number for s in selected], [r.inputs_key for r in per_span],
                output_dir, options.num_shards)
            files = [f for r in per_span for f in r.input_files]
    manifest = {"records_dir": output_dir, "stats": stats, "options": json.loads(options.to_json()),
                "vocab_file": vocab_file, "corpus_pattern": corpus_pattern, "input_files": files,
                "reused": reused, "spans": [s.number for s in selected]}
    vocab_lib.write_text(os.path.join(records.uri, PretrainingRecords.MANIFEST_NAME),
                         json.dumps(manifest, indent=2, sort_keys=True))
    records.set_int_custom_property("num_train_instances", stats["num_train_instances"])
    records.set_int_custom_property("num_eval_instances", stats["num_eval_instances"])
    records.set_string_custom_property("records_dir", output_dir)
    records.set_int_custom_property("reused", int(reused))
    records.set_string_custom_property("options", options.to_json())
    records.set_string_custom_property("stats", json.dumps(stats, sort_keys=True))
    records.set_string_custom_property(corpus_files.PROPERTY_NAME, corpus_files.corpus_files_json(files))
    if selected:
        records.set_int_custom_property("span", selected[-1].number)
        records.set_string_custom_property("spans", json.dumps([s.number for s in selected]))
        if selected[-1].version is not None:
            records.set_int_custom_property("version", selected[-1].version)


@dataclasses.dataclass(frozen=True)
class _Published:
    """Records published in `directory` for `input_files` (reused: made by an earlier run)."""

    directory: str
    stats: dict
    reused: bool
    inputs_key: str
    input_files: list


def _publish_records(patterns: list[str], output_dir: str, vocab_file: str, options: PretrainingDataOptions,
                     pipeline) -> _Published:
    """Generates the records of `patterns` into output_dir unless published there for the same inputs."""
    files = [f.path for f in text_reader.expand_patterns(patterns, option_name=CORPUS_FLAG)]
    key = records_reuse.inputs_key(files, vocab_file, options.to_json())
    published = records_reuse.published_manifest(output_dir, key, options.num_shards, beam_job.MANIFEST_NAME)
    if published is not None:
        logging.info("Records for these inputs are already published at %s; not generating them again.",
                     output_dir)
        return _Published(output_dir, published["stats"], True, key, files)
    stats = beam_job.run_prepare_data(patterns, vocab_file, output_dir, options, pipeline=pipeline,
                                      input_flag=CORPUS_FLAG, manifest_extra={records_reuse.INPUTS_KEY: key})
    return _Published(output_dir, stats, False, key, files)
