"""`bertpipe compile --retrain`: the one create_pipeline, with the latest-blessed-model resolver
feeding the Trainer's base_model and the Evaluator's baseline_model, compiles for Vertex AI."""
from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import cli
from pipeline.pipeline import LATEST_BLESSED_MODEL_RESOLVER


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("compile_retrain") / "retrain.json"
    status = cli.main(["compile", "--retrain", "--output", str(out), "--pipeline_root", "gs://bucket/root",
                       "--image", "gcr.io/proj/bert:1", "--corpus", "gs://bucket/corpus/span-{SPAN}/*.txt",
                       "--max_masked_lm_accuracy_drop", "0.01"])
    assert status == 0
    return json.loads(out.read_text())


def test_resolver_tasks_feed_trainer_and_evaluator(compiled):
    spec = json_format.ParseDict(compiled["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    tasks = compiled["pipelineSpec"]["root"]["dag"]["tasks"]
    resolver_tasks = {name for name in tasks if name.startswith(LATEST_BLESSED_MODEL_RESOLVER)}
    # KubeflowV2 compiles LatestBlessedModelStrategy into two metadata queries.
    assert resolver_tasks == {f"{LATEST_BLESSED_MODEL_RESOLVER}-model-blessing-resolver",
                              f"{LATEST_BLESSED_MODEL_RESOLVER}-model-resolver"}
    assert set(spec.root.dag.tasks) >= resolver_tasks | {"BertTrainer", "Evaluator"}
    model_resolver = f"{LATEST_BLESSED_MODEL_RESOLVER}-model-resolver"
    trainer_base = tasks["BertTrainer"]["inputs"]["artifacts"]["base_model"]["taskOutputArtifact"]
    evaluator_baseline = tasks["Evaluator"]["inputs"]["artifacts"]["baseline_model"]["taskOutputArtifact"]
    assert trainer_base["producerTask"] == evaluator_baseline["producerTask"] == model_resolver


def test_resolver_fed_inputs_are_optional_and_the_others_required(compiled):
    """On the first run the resolvers find nothing: the spec must let the Trainer, the
    Evaluator and the model resolver run without what they would have fed (isOptional)."""
    components = compiled["pipelineSpec"]["components"]
    optional = {(name, key) for name, component in components.items()
                for key, spec in component.get("inputDefinitions", {}).get("artifacts", {}).items()
                if spec.get("isOptional")}
    assert optional == {("BertTrainer", "base_model"), ("Evaluator", "baseline_model"),
                        (f"{LATEST_BLESSED_MODEL_RESOLVER}-model-resolver", "input")}


def test_evaluator_compares_with_the_baseline(compiled):
    tasks = compiled["pipelineSpec"]["root"]["dag"]["tasks"]
    eval_config = json.loads(
        tasks["Evaluator"]["inputs"]["parameters"]["eval_config"]["runtimeValue"]["constant"])
    assert [spec.get("is_baseline", False) for spec in eval_config["model_specs"]] == [False, True]
    [accuracy] = [m for spec in eval_config["metrics_specs"] for m in spec["metrics"]
                  if json.loads(m["config"])["name"] == "masked_lm_accuracy"]
    change = accuracy["threshold"]["change_threshold"]
    assert change["direction"] == "HIGHER_IS_BETTER"
    assert change["absolute"] == pytest.approx(-0.01)


def test_examples_read_the_newest_span_of_the_records(compiled):
    tasks = compiled["pipelineSpec"]["root"]["dag"]["tasks"]
    input_config = json.loads(tasks["ImportExampleGen"]["inputs"]["parameters"]["input_config"]
                              ["runtimeValue"]["constant"])
    assert [s["pattern"] for s in input_config["splits"]] == ["span-{SPAN}/records/train/*",
                                                              "span-{SPAN}/records/eval/*"]


def test_records_given_as_a_span_pattern_are_read_by_span(tmp_path):
    out = tmp_path / "examples.json"
    status = cli.main(["compile", "--retrain", "--output", str(out), "--pipeline_root", "gs://bucket/root",
                       "--image", "gcr.io/proj/bert:1", "--examples", "gs://bucket/records/span-{SPAN}",
                       "--vocab_file", "gs://bucket/vocab.txt"])
    assert status == 0
    tasks = json.loads(out.read_text())["pipelineSpec"]["root"]["dag"]["tasks"]
    params = tasks["ImportExampleGen"]["inputs"]["parameters"]
    assert params["input_base"]["runtimeValue"]["constant"] == "gs://bucket/records"
    input_config = json.loads(params["input_config"]["runtimeValue"]["constant"])
    assert [s["pattern"] for s in input_config["splits"]] == ["span-{SPAN}/train/*", "span-{SPAN}/eval/*"]


def test_rolling_window_reads_the_window_directory(tmp_path):
    out = tmp_path / "window.json"
    assert cli.main(["compile", "--retrain", "--output", str(out), "--pipeline_root", "gs://bucket/root",
                     "--image", "gcr.io/proj/bert:1", "--corpus", "gs://bucket/corpus/span-{SPAN}/*.txt",
                     "--num_spans", "3"]) == 0
    tasks = json.loads(out.read_text())["pipelineSpec"]["root"]["dag"]["tasks"]
    data_params = tasks["PretrainingDataGen"]["inputs"]["parameters"]
    records_dir = data_params["records_dir"]["runtimeValue"]["constant"]
    assert data_params["num_spans"]["runtimeValue"]["constant"] == 3
    example_params = tasks["ImportExampleGen"]["inputs"]["parameters"]
    assert example_params["input_base"]["runtimeValue"]["constant"] == f"{records_dir}/window-3"


def test_rolling_window_needs_a_span_corpus(tmp_path, capsys):
    assert cli.main(["compile", "--output", str(tmp_path / "x.json"), "--corpus", "gs://b/c/*.txt",
                     "--num_spans", "2"]) == 2
    assert "--num_spans 2 needs a --corpus pattern with {SPAN}" in capsys.readouterr().err
