"""`bertpipe compile`: a Vertex AI PipelineJob JSON that KFP's PipelineSpec parses."""
from __future__ import annotations

import json

import pytest
import yaml
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
    records_dir = data_params["records_dir"]["runtimeValue"]["constant"]
    assert records_dir.startswith("gs://bucket/root/pretraining_records/")
    assert example_params["input_base"]["runtimeValue"]["constant"] == records_dir
    corpus = data_params["corpus_pattern"]["runtimeValue"]["constant"]
    assert corpus == IMAGE_DEFAULT_CORPUS


def test_trainer_carries_the_original_flags(compiled):
    params = compiled["pipelineSpec"]["root"]["dag"]["tasks"]["BertTrainer"]["inputs"]["parameters"]
    custom_config = json.loads(params["custom_config"]["runtimeValue"]["constant"])
    assert custom_config["training"]["num_train_steps"] == 1000
    assert custom_config["training"]["learning_rate"] == 1e-4
    assert custom_config["checkpoint_dir"].startswith("gs://bucket/root/checkpoints/")
    assert params["run_fn"]["runtimeValue"]["constant"] == "components.trainer.run_fn.run_fn"


def _schema_titles(compiled) -> set[str]:
    titles = set()
    for component in compiled["pipelineSpec"]["components"].values():
        for direction in ("inputDefinitions", "outputDefinitions"):
            for artifact in component.get(direction, {}).get("artifacts", {}).values():
                kind = artifact["artifactType"]
                # Schema 2.1 names the type by schemaTitle; 2.0 by a YAML instanceSchema's title.
                titles.add(kind["schemaTitle"] if "schemaTitle" in kind
                           else yaml.safe_load(kind["instanceSchema"])["title"])
    return titles


def test_every_artifact_type_resolves_as_the_container_entrypoint_resolves_it(compiled):
    """TFX's Kubeflow V2 entrypoint imports a custom type's schema title as a class path
    before any project code runs; a title that does not import kills the task at once.
    Checked in a fresh interpreter, where nothing of the project is imported yet."""
    import subprocess
    import sys

    titles = _schema_titles(compiled)
    assert {"components.Vocabulary", "components.PretrainingRecords"} <= titles
    script = (
        "import sys\n"
        "from kfp.pipeline_spec import pipeline_spec_pb2\n"
        "from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as u\n"
        "from tfx.utils import import_utils\n"
        "for title in sys.argv[1:]:\n"
        "    schema = pipeline_spec_pb2.ArtifactTypeSchema(schema_title=title)\n"
        "    cls = import_utils.import_class_by_path(u._retrieve_class_path(schema))\n"
        "    print(title, cls.TYPE_NAME)\n")
    result = subprocess.run([sys.executable, "-c", script, *sorted(titles)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    resolved = dict(line.split() for line in result.stdout.splitlines())
    assert resolved["components.Vocabulary"] == "components.Vocabulary"
    assert resolved["components.PretrainingRecords"] == "components.PretrainingRecords"


def test_trainer_inputs_carry_the_code_version(compiled):
    """Vertex AI's cache keys on a task's inputs: the source hash there means a change to the
    trainer's code or a BERT config is a cache miss, not a stale cached model."""
    from pipeline import code_version

    params = compiled["pipelineSpec"]["root"]["dag"]["tasks"]["BertTrainer"]["inputs"]["parameters"]
    custom_config = json.loads(params["custom_config"]["runtimeValue"]["constant"])
    assert custom_config["code_version"]["source_hash"] == code_version.source_hash()
    assert custom_config["code_version"]["package_version"] == "0.1.0"


def test_a_local_run_spec_keeps_the_checkouts_corpus(tmp_path):
    """`compile --local_run` makes a spec for run-spec on this machine: without --corpus it reads
    the shipped corpus where it is here, not where the image keeps it."""
    from pipeline.config import DEFAULT_CORPUS

    out = tmp_path / "local.json"
    assert cli.main(["compile", "--local_run", "--output", str(out), "--pipeline_root", str(tmp_path / "root"),
                     "--image", "local/bert-tfx-pipeline:dev"]) == 0
    params = json.loads(out.read_text())["pipelineSpec"]["root"]["dag"]["tasks"]["VocabularyGen"]["inputs"]["parameters"]
    assert params["corpus_pattern"]["runtimeValue"]["constant"] == DEFAULT_CORPUS
