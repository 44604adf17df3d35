"""kubeflow.metadata_queries: Vertex ML Metadata filters, as TFX compiles its resolvers, answered
from a real SQLite ML-metadata store."""
from __future__ import annotations

import pytest
from ml_metadata.proto import metadata_store_pb2

from kubeflow import local_metadata
from kubeflow.metadata_queries import Clause, find_artifacts, parse_filter

BLESSING_FILTER = 'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'
MODEL_FILTER = 'schema_title="tfx.Model" AND state=LIVE AND name="{name}"'

LIVE, ABANDONED = metadata_store_pb2.Artifact.LIVE, metadata_store_pb2.Artifact.ABANDONED


def test_parses_the_filters_tfx_compiles_for_the_latest_blessed_model_resolver():
    assert parse_filter(BLESSING_FILTER) == [
        Clause("schema_title", "tfx.ModelBlessing"), Clause("state", "LIVE"),
        Clause("metadata.blessed.number_value", 1.0)]
    assert parse_filter(MODEL_FILTER.format(name="job-1/BertTrainer/model")) == [
        Clause("schema_title", "tfx.Model"), Clause("state", "LIVE"), Clause("name", "job-1/BertTrainer/model")]
    assert parse_filter('name="a \\"quoted\\" name"') == [Clause("name", 'a "quoted" name')]


@pytest.mark.parametrize("text, complaint", [
    ('schema_title="tfx.Model" OR state=LIVE', "only AND-joined"),
    ("schema_title=tfx.Model", "needs a quoted value"),
    ('create_time>"2024-01-01"', "expected field=value"),
    ('display_name="x"', "'display_name' is not supported"),
    ("state=ALIVE", "not an artifact state"),
    ("metadata.blessed.number_value=yes", "needs a number"),
])
def test_refuses_what_it_cannot_answer_exactly(text, complaint):
    with pytest.raises(ValueError, match=complaint):
        parse_filter(text)


@pytest.fixture
def store(tmp_path):
    return local_metadata.open_store(str(tmp_path / "metadata.sqlite"))


def _put(store, title: str, name: str, state=LIVE, **custom) -> int:
    type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name=title))
    artifact = metadata_store_pb2.Artifact(type_id=type_id, name=name, uri=f"/root/{name}", state=state)
    for key, value in custom.items():
        artifact.custom_properties[key].CopyFrom(local_metadata.to_mlmd_value(value))
    [artifact_id] = store.put_artifacts([artifact])
    return artifact_id


def test_answers_latest_first_and_only_live_matching_artifacts(store):
    old_blessed = _put(store, "tfx.ModelBlessing", "run1/blessing", blessed=1, current_model_id="run1/model")
    _put(store, "tfx.ModelBlessing", "run2/blessing", blessed=0, current_model_id="run2/model")
    new_blessed = _put(store, "tfx.ModelBlessing", "run3/blessing", blessed=1, current_model_id="run3/model")
    _put(store, "tfx.ModelBlessing", "run4/blessing", state=ABANDONED, blessed=1)
    _put(store, "tfx.ModelEvaluation", "run3/evaluation", blessed=1)  # another type, same metadata
    model = _put(store, "tfx.Model", "run3/model")
    _put(store, "tfx.Model", "run3/model-copy")

    assert [a.id for a in find_artifacts(store, BLESSING_FILTER)] == [new_blessed, old_blessed]
    assert [a.id for a in find_artifacts(store, MODEL_FILTER.format(name="run3/model"))] == [model]
    assert find_artifacts(store, MODEL_FILTER.format(name="null")) == []
    assert find_artifacts(store, 'schema_title="tfx.NoSuchType" AND state=LIVE') == []
    # A double-valued number matches numerically; a string "1" does not.
    score = _put(store, "tfx.ModelEvaluation", "run5/evaluation", blessed=1.0, score=0.25)
    _put(store, "tfx.ModelEvaluation", "run6/evaluation", score="0.25")
    assert [a.id for a in find_artifacts(store, 'metadata.score.number_value=0.25')] == [score]


def test_scoped_to_a_context_it_sees_only_that_pipeline(store):
    theirs = _put(store, "tfx.ModelBlessing", "other/blessing", blessed=1)
    ours_store = local_metadata.LocalVertexMetadata(store, "bert-pretraining", "bert-pretraining-1")
    assert ours_store.find_artifacts(BLESSING_FILTER) == []
    assert [a.id for a in find_artifacts(store, BLESSING_FILTER)] == [theirs]
