"""`bertpipe compile`: a Vertex AI PipelineJob JSON that KFP's PipelineSpec parses."""
from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from kubeflow.runner import IMAGE_DEFAULT_CORPUS
from pipeline import cli

COMPONENTS = {"VocabularyGen", "PretrainingDataGen", "ImportExampleGen", "BertTrainer", "Evaluator", "Pusher"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("compile") / "pipeline.json"
    status = cli.main(["compile", "--output", str(out), "--pipeline_root", "gs://bucket/root",
                       "--image", "gcr.io/proj/bert:1", "--num_train_steps", "1000", "--learning_rate", "1e-4"])
    assert status == 0
    return json.loads(out.read_text())


def test_spec_parses_as_kfp_pipeline_spec_with_every_component(compiled):
    spec = json_format.ParseDict(compiled["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    assert set(spec.root.dag.tasks) == COMPONENTS
    assert set(spec.components) == COMPONENTS
    assert compiled["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/root"
    for executor in spec.deployment_spec.fields["executors"].struct_value.fields.values():
        assert executor.struct_value.fields["container"].struct_value.fields["image"].string_value == "gcr.io/proj/bert:1"


def test_data_flows_vocab_to_records_to_examples_to_trainer(compiled):
    tasks = compiled["pipelineSpec"]["root"]["dag"]["tasks"]
    assert tasks["PretrainingDataGen"]["dependentTasks"] == ["VocabularyGen"]
    assert tasks["ImportExampleGen"]["dependentTasks"] == ["PretrainingDataGen"]
    assert set(tasks["BertTrainer"]["dependentTasks"]) == {"ImportExampleGen", "VocabularyGen"}
    assert set(tasks["Pusher"]["dependentTasks"]) == {"BertTrainer", "Evaluator"}
    data_params = tasks["PretrainingDataGen"]["inputs"]["parameters"]
    example_params = tasks["ImportExampleGen"]["inputs"]["parameters"]
    records_dir = data_params["records_dir"]["runtimeValue"]["constantValue"]["stringValue"]
    assert records_dir.startswith("gs://bucket/root/pretraining_records/")
    assert example_params["input_base"]["runtimeValue"]["constantValue"]["stringValue"] == records_dir
    corpus = data_params["corpus_pattern"]["runtimeValue"]["constantValue"]["stringValue"]
    assert corpus == IMAGE_DEFAULT_CORPUS


def test_trainer_carries_the_original_flags(compiled):
    params = compiled["pipelineSpec"]["root"]["dag"]["tasks"]["BertTrainer"]["inputs"]["parameters"]
    custom_config = json.loads(params["custom_config"]["runtimeValue"]["constantValue"]["stringValue"])
    assert custom_config["training"]["num_train_steps"] == 1000
    assert custom_config["training"]["learning_rate"] == 1e-4
    assert custom_config["checkpoint_dir"].startswith("gs://bucket/root/checkpoints/")
    assert params["run_fn"]["runtimeValue"]["constantValue"]["stringValue"] == "components.trainer.run_fn.run_fn"
