"""The TFX components call the plain functions and fill the artifacts (component.py)."""
import hashlib
import json
import os

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from tfx.types import channel_utils

from components.artifacts import PretrainingRecords, Vocabulary
from components.pretraining_data import component
from components.pretraining_data.options import PretrainingDataOptions

from test_pretraining_fixtures import corpus_text


def _fn(comp):
    return comp.EXECUTOR_SPEC.executor_class._FUNCTION


def test_vocabulary_gen_then_pretraining_data_gen(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text(12, seed=4))
    vocabulary = Vocabulary()
    vocabulary.uri = str(tmp_path / "vocab_artifact")
    os.makedirs(vocabulary.uri)
    _fn(component.VocabularyGen)(corpus_pattern=str(corpus), vocab_size=150, do_lower_case=1,
                                 vocabulary=vocabulary)
    assert os.path.exists(os.path.join(vocabulary.uri, "vocab.txt"))
    assert 5 < vocabulary.get_int_custom_property("vocab_size") <= 150
    assert vocabulary.get_int_custom_property("do_lower_case") == 1
    # Lineage: the exact text and vocab file, by content hash.
    corpus_sha256 = hashlib.sha256(corpus.read_bytes()).hexdigest()
    expected_corpus = [{"path": str(corpus), "size_bytes": corpus.stat().st_size, "sha256": corpus_sha256}]
    assert json.loads(vocabulary.get_string_custom_property("corpus_files")) == expected_corpus
    with open(os.path.join(vocabulary.uri, "vocab.txt"), "rb") as f:
        assert vocabulary.get_string_custom_property("sha256") == hashlib.sha256(f.read()).hexdigest()

    records = PretrainingRecords()
    records.uri = str(tmp_path / "records_artifact")
    os.makedirs(records.uri)
    options = PretrainingDataOptions(max_seq_length=32, max_predictions_per_seq=5, dupe_factor=1,
                                     num_shards=1, eval_fraction=0.2)
    records_dir = str(tmp_path / "records")
    _fn(component.PretrainingDataGen)(
        vocabulary=vocabulary, corpus_pattern=f"{corpus}", records_dir=records_dir,
        options_json=options.to_json(), records=records,
        beam_pipeline=beam.Pipeline(options=PipelineOptions(["--direct_num_workers=1"])))
    manifest = json.load(open(os.path.join(records.uri, "manifest.json")))
    assert manifest["records_dir"] == records_dir == records.get_string_custom_property(
        "records_dir")
    assert (records.get_int_custom_property("num_train_instances")
            == manifest["stats"]["num_train_instances"] > 0)
    assert os.path.exists(os.path.join(records_dir, "train", "part-00000-of-00001.tfrecord"))
    assert json.loads(records.get_string_custom_property("corpus_files")) == expected_corpus
    assert json.loads(records.get_string_custom_property("options")) == json.loads(options.to_json())
    assert json.loads(records.get_string_custom_property("stats")) == manifest["stats"]


def test_components_build_with_channels():
    vocab_gen = component.VocabularyGen(corpus_pattern="a.txt", vocab_size=100, do_lower_case=1)
    data_gen = component.PretrainingDataGen(
        vocabulary=vocab_gen.outputs["vocabulary"], corpus_pattern="a.txt", records_dir="/r",
        options_json=PretrainingDataOptions().to_json())
    assert data_gen.outputs["records"].type is PretrainingRecords
    assert channel_utils.as_channel([Vocabulary()]).type is Vocabulary


def test_corpus_errors_name_the_pipelines_corpus_flag(tmp_path):
    """Under `bertpipe run` the corpus is --corpus: both components say so, not --input_file."""
    import pytest

    corpus = tmp_path / "blank.txt"
    corpus.write_text("\n \n\n")
    vocabulary = Vocabulary()
    vocabulary.uri = str(tmp_path / "vocab_artifact")
    os.makedirs(vocabulary.uri)
    with pytest.raises(ValueError, match=r"^--corpus .*blank.txt.*only blank lines"):
        _fn(component.VocabularyGen)(corpus_pattern=str(corpus), vocab_size=150, do_lower_case=1,
                                     vocabulary=vocabulary)
    with open(os.path.join(vocabulary.uri, "vocab.txt"), "w") as f:
        f.write("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n")
    records = PretrainingRecords()
    records.uri = str(tmp_path / "records_artifact")
    with pytest.raises(ValueError, match=r"^--corpus .*blank.txt.*only blank lines"):
        _fn(component.PretrainingDataGen)(
            vocabulary=vocabulary, corpus_pattern=str(corpus), records_dir=str(tmp_path / "records"),
            options_json=PretrainingDataOptions(max_seq_length=32, max_predictions_per_seq=5).to_json(),
            records=records, beam_pipeline=beam.Pipeline(options=PipelineOptions(["--direct_num_workers=1"])))


def test_vocabulary_gen_counts_on_the_pipelines_beam_arguments(tmp_path, monkeypatch):
    """VocabularyGen is a Beam component: TFX builds its pipeline from the pipeline's
    beam_pipeline_args (on Vertex AI: the spec's), so --runner=DataflowRunner reaches its count."""
    from tfx.dsl.components.base import base_beam_executor

    from components.pretraining_data import word_counts

    seen = []
    build = word_counts.build_pipeline

    def recording_build(pipeline, *args, **kwargs):
        seen.append(pipeline.options.get_all_options()["direct_num_workers"])
        return build(pipeline, *args, **kwargs)

    monkeypatch.setattr(word_counts, "build_pipeline", recording_build)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text(12, seed=4))
    vocabulary = Vocabulary()
    vocabulary.uri = str(tmp_path / "vocab_artifact")
    os.makedirs(vocabulary.uri)
    executor = component.VocabularyGen.EXECUTOR_SPEC.executor_class(
        context=base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=["--direct_num_workers=3"]))
    executor.Do({}, {"vocabulary": [vocabulary]},
                {"corpus_pattern": str(corpus), "vocab_size": 150, "do_lower_case": 1})
    assert seen == [3]  # not the job's own default (2 workers)
    assert os.path.exists(os.path.join(vocabulary.uri, "vocab.txt"))
