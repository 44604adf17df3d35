"""`bertpipe lineage` on a store that retraining made: span 1 trained from scratch, then span 2
warm-started from that model and evaluated against it. The expected answers are read from the
store with plain ML-metadata calls, not from the lineage code."""
from __future__ import annotations

import json
import shutil

import pytest

from pipeline import cli
from test_retrain_e2e import RETRAIN_FLAGS, _inputs, _models, _store

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def retrained(tmp_path_factory, corpus_spans):
    root = tmp_path_factory.mktemp("lineage_retrain")
    pattern = str(root / "corpus" / "span-{SPAN}" / "*.txt")
    out = root / "out"
    for n in (1, 2):
        shutil.copytree(corpus_spans[n - 1], root / "corpus" / f"span-{n}")
        assert cli.main(["retrain", "--corpus", pattern, "--output_dir", str(out)] + RETRAIN_FLAGS) == 0
    metadata_path = str(out / "metadata.sqlite")
    first, second = _models(_store(metadata_path))
    return {"metadata_path": metadata_path, "first": first, "second": second, "out": out}


def _lineage_json(capsys, *args) -> dict:
    assert cli.main(["lineage", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["result"]


def test_the_retrained_model_names_its_base_model_baseline_and_span(retrained, capsys):
    first, second = retrained["first"], retrained["second"]
    store = _store(retrained["metadata_path"])
    assert _inputs(store, second.id)["base_model"] == {first.id}  # what the store itself says
    lineage = _lineage_json(capsys, "model", "latest", "--metadata_path", retrained["metadata_path"])
    assert lineage["model"]["id"] == str(second.id)
    assert lineage["base_model"]["id"] == str(first.id) and lineage["base_model"]["uri"] == first.uri
    [evaluation] = lineage["evaluations"]
    assert evaluation["baseline_model"]["id"] == str(first.id)
    assert [e["span"] for e in lineage["examples"]] == [2]
    first_lineage = _lineage_json(capsys, "model", str(first.id), "--metadata_path", retrained["metadata_path"])
    assert first_lineage["base_model"] is None
    assert first_lineage["evaluations"][0]["baseline_model"] is None
    assert [e["span"] for e in first_lineage["examples"]] == [1]


def test_runs_show_their_spans_and_uses_finds_the_warm_started_model(retrained, capsys):
    runs = _lineage_json(capsys, "runs", "--metadata_path", retrained["metadata_path"])
    assert [r["spans"] for r in runs] == [[2], [1]]
    assert [r["model"]["id"] for r in runs] == [str(retrained["second"].id), str(retrained["first"].id)]
    made = _lineage_json(capsys, "uses", str(retrained["first"].id), "--metadata_path", retrained["metadata_path"])
    assert str(retrained["second"].id) in made["models"]


def test_diff_shows_the_base_model_and_the_data(retrained, capsys):
    diff = _lineage_json(capsys, "diff", str(retrained["first"].id), "latest",
                         "--metadata_path", retrained["metadata_path"])
    sections = {d["section"] for d in diff["differences"]}
    assert {"base_model", "data"} <= sections
    [base] = [d for d in diff["differences"] if d["section"] == "base_model"]
    assert (base["a"], base["b"]) == (None, str(retrained["first"].id))
