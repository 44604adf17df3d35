"""`bertpipe retrain`'s decision, from a real ML-metadata store (SQLite) filled as TFX fills it:
Model artifacts with the span they were trained on, ModelBlessings naming them."""
from __future__ import annotations

import os

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import cli, retrain
from pipeline.config import PipelineConfig


def _store(path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(config)


def _fill(path: str, models: list[tuple[int, bool]], pipeline_name: str = "bert-pretraining") -> list[int]:
    """One Model per (span, blessed), oldest first, each with its ModelBlessing, in the pipeline's context."""
    store = _store(path)
    type_ids = {name: store.put_artifact_type(metadata_store_pb2.ArtifactType(name=name))
                for name in ("Model", "ModelBlessing")}
    context_type = store.put_context_type(metadata_store_pb2.ContextType(name="pipeline"))
    [context_id] = store.put_contexts([metadata_store_pb2.Context(type_id=context_type, name=pipeline_name)])
    ids = []
    for span, blessed in models:
        model = metadata_store_pb2.Artifact(type_id=type_ids["Model"], uri=f"/models/{span}",
                                            state=metadata_store_pb2.Artifact.LIVE)
        model.custom_properties["span"].int_value = span
        [model_id] = store.put_artifacts([model])
        blessing = metadata_store_pb2.Artifact(type_id=type_ids["ModelBlessing"], uri=f"/blessings/{span}",
                                               state=metadata_store_pb2.Artifact.LIVE)
        blessing.custom_properties["blessed"].int_value = int(blessed)
        blessing.custom_properties["current_model_id"].int_value = model_id
        [blessing_id] = store.put_artifacts([blessing])
        store.put_attributions_and_associations(
            [metadata_store_pb2.Attribution(artifact_id=i, context_id=context_id) for i in (model_id, blessing_id)], [])
        ids.append(model_id)
    return ids


def _corpus(tmp_path, spans: list[int]) -> str:
    for span in spans:
        os.makedirs(tmp_path / "corpus" / f"span-{span}", exist_ok=True)
        (tmp_path / "corpus" / f"span-{span}" / "a.txt").write_text("A sentence.\n")
    return str(tmp_path / "corpus" / "span-{SPAN}" / "*.txt")


def test_no_store_means_train(tmp_path):
    config = PipelineConfig(corpus_pattern=_corpus(tmp_path, [1]))
    decision = retrain.decide(config, str(tmp_path / "missing.sqlite"))
    assert decision.run and decision.blessed is None and decision.newest_span == 1


def test_the_latest_blessed_model_is_the_newest_blessed_one(tmp_path):
    path = str(tmp_path / "m.sqlite")
    ids = _fill(path, [(1, True), (2, True), (3, False)])
    blessed = retrain.latest_blessed_model(path, "bert-pretraining")
    assert (blessed.id, blessed.span) == (ids[1], 2)
    assert retrain.latest_blessed_model(path, "another-pipeline") is None


def test_new_span_runs_and_a_seen_span_does_not(tmp_path):
    path = str(tmp_path / "m.sqlite")
    _fill(path, [(1, True), (2, True), (3, False)])  # span 3 was tried and not blessed
    seen = PipelineConfig(corpus_pattern=_corpus(tmp_path, [1, 2]))
    assert not retrain.decide(seen, path).run
    assert retrain.decide(seen, path, force=True).run
    # Span 3 is still new: no blessed model has seen it.
    assert retrain.decide(PipelineConfig(corpus_pattern=_corpus(tmp_path, [3])), path).run


def test_pattern_without_span_is_span_zero(tmp_path):
    path = str(tmp_path / "m.sqlite")
    _fill(path, [(0, True)])
    (tmp_path / "plain.txt").write_text("A sentence.\n")
    assert not retrain.decide(PipelineConfig(corpus_pattern=str(tmp_path / "plain.txt")), path).run


def test_cli_with_nothing_new_runs_nothing_and_exits_0(tmp_path, capsys):
    out = tmp_path / "out"
    os.makedirs(out)
    _fill(str(out / "metadata.sqlite"), [(1, True)])
    status = cli.main(["retrain", "--corpus", _corpus(tmp_path, [1]), "--output_dir", str(out)])
    assert status == retrain.EXIT_OK
    assert "nothing new" in capsys.readouterr().out
    assert not (out / "tfx_root").exists()


def test_cli_with_a_pattern_matching_nothing_is_a_one_line_error(tmp_path, capsys):
    status = cli.main(["retrain", "--corpus", str(tmp_path / "none" / "span-{SPAN}" / "*.txt"),
                       "--output_dir", str(tmp_path / "out")])
    assert status == retrain.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith("bertpipe retrain: error: No file matches the span pattern") and "\n" not in err


def test_exit_code_of_a_trained_run():
    class Summary:
        blessed, pushed_uri = False, None
    assert retrain.exit_code(Summary) == retrain.EXIT_NOT_BLESSED
    Summary.blessed, Summary.pushed_uri = True, "/serving/1"
    assert retrain.exit_code(Summary) == retrain.EXIT_OK


def test_exit_codes_are_in_the_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["retrain", "--help"])
    text = capsys.readouterr().out
    for code, meaning in retrain.EXIT_CODES.items():
        assert f"{code}  {meaning}" in text
