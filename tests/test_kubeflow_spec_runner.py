"""`bertpipe run-spec` on small compiled specs: importers, runtime parameters, resolvers on an
empty store, a failing task, and the ExecutorInput a container task receives. (The whole
pipeline run this way is tests/test_kubeflow_run_spec_e2e.py.)"""
from __future__ import annotations

import json
import logging
import os

import pytest
from kfp.pipeline_spec import pipeline_spec_pb2
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.types import Channel
from tfx.types.standard_artifacts import Model, ModelBlessing

from components.artifacts import Vocabulary
from components.pretraining_data.component import VocabularyGen
from kubeflow import executor_input, local_metadata, pipeline_job, spec_runner
from kubeflow import runner as kubeflow_runner
from pipeline import cli

RESOLVER_ID = "latest_blessed_model_resolver"
BLESSING_TASK = f"{RESOLVER_ID}-model-blessing-resolver"
MODEL_TASK = f"{RESOLVER_ID}-model-resolver"


def compile_spec(components, path, pipeline_name="bert-pretraining", schema_2_1=True) -> str:
    """Compiles `components` as `kubeflow/runner.py` does (KubeflowV2DagRunner, then the
    resolver-fed inputs marked isOptional)."""
    pipeline = tfx.dsl.Pipeline(pipeline_name=pipeline_name, pipeline_root=str(path.parent / "root"),
                                components=components)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image="img:1",
                                                                         use_pipeline_spec_2_1=schema_2_1),
        output_dir=str(path.parent), output_filename=path.name)
    runner.run(pipeline, write_out=True)
    with open(path, encoding="utf-8") as f:
        job = json.load(f)
    kubeflow_runner.mark_resolver_inputs_optional(job)  # as `bertpipe compile` does
    with open(path, "w", encoding="utf-8") as f:
        json.dump(job, f, sort_keys=True)
    return str(path)


def latest_blessed_model_resolver():
    return tfx.dsl.Resolver(strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
                            model=Channel(type=Model), model_blessing=Channel(type=ModelBlessing)).with_id(RESOLVER_ID)


def _store(path):
    return local_metadata.open_store(str(path))


def _executions(store):
    return {e.custom_properties["task_name"].string_value: e for e in store.get_executions()}


@pytest.fixture(scope="module")
def importer_spec(tmp_path_factory):
    uri = tfx.dsl.experimental.RuntimeParameter(name="vocab_uri", ptype=str)
    importer = tfx.dsl.Importer(source_uri=uri, artifact_type=Vocabulary, reimport=False).with_id("VocabularyImporter")
    return compile_spec([importer], tmp_path_factory.mktemp("importer") / "pipeline.json", pipeline_name="imports")


def test_importer_makes_the_artifact_from_the_runtime_parameter_and_reuses_it(importer_spec, tmp_path):
    metadata_path = tmp_path / "metadata.sqlite"
    overrides = {"vocab_uri": "/data/vocab.txt"}
    first = spec_runner.run_spec(importer_spec, str(tmp_path / "root"), str(metadata_path), overrides)
    [artifact] = first.tasks[0].outputs["result"]
    assert artifact.uri == "/data/vocab.txt"
    assert local_metadata.schema_title(artifact.type) == "components.Vocabulary"
    second = spec_runner.run_spec(importer_spec, str(tmp_path / "root"), str(metadata_path), overrides)
    assert second.tasks[0].outputs["result"][0].name == artifact.name  # reimport=False: the same artifact

    store = _store(metadata_path)
    [stored] = store.get_artifacts_by_type("components.Vocabulary")
    assert (stored.uri, stored.name) == ("/data/vocab.txt", artifact.name)
    assert stored.state == metadata_store_pb2.Artifact.LIVE
    events = sorted(e.type for e in store.get_events_by_artifact_ids([stored.id]))
    assert events == sorted([metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.INTERNAL_OUTPUT])
    runs = store.get_contexts_by_type(local_metadata.RUN_CONTEXT_TYPE)
    assert {c.name for c in runs} == {first.job_name, second.job_name}
    [pipeline_context] = store.get_contexts_by_type(local_metadata.PIPELINE_CONTEXT_TYPE)
    assert {c.id for c in store.get_children_contexts_by_context(pipeline_context.id)} == {c.id for c in runs}
    # The same runs under TFX's local context types, with a node context for the task.
    [tfx_pipeline] = store.get_contexts_by_type("pipeline")
    tfx_runs = store.get_children_contexts_by_context(tfx_pipeline.id)
    assert tfx_pipeline.name == "imports" and {c.name for c in tfx_runs} == {first.job_name, second.job_name}
    assert all(c.type == "pipeline_run" for c in tfx_runs)
    assert all(len(store.get_executions_by_context(c.id)) == 1 for c in tfx_runs)
    assert {a.id for c in tfx_runs for a in store.get_artifacts_by_context(c.id)} == {stored.id}
    [node] = store.get_contexts_by_type("node")
    assert node.name == "imports.VocabularyImporter"
    assert len(store.get_executions_by_context(node.id)) == 2


def test_runtime_parameters_are_checked_against_the_spec(importer_spec, tmp_path, capsys):
    base = ["run-spec", importer_spec, "--pipeline_root", str(tmp_path), "--metadata_path", str(tmp_path / "m.sqlite")]
    assert cli.main(base) == 2
    assert "needs the pipeline parameter 'vocab_uri', which has no value: give --parameter vocab_uri=VALUE" \
        in capsys.readouterr().err
    assert cli.main(base + ["--parameter", "vocab_path=/x"]) == 2
    assert "--parameter vocab_path: the pipeline has no such runtime parameter (it has: vocab_uri)" \
        in capsys.readouterr().err
    assert cli.main(base + ["--parameter", "vocab_uri"]) == 2
    assert "--parameter vocab_uri: expected NAME=VALUE" in capsys.readouterr().err


def test_integer_parameters_are_read_as_integers(importer_spec):
    job = pipeline_job.load(importer_spec)
    job.spec.root.input_definitions.parameters["steps"].parameter_type = pipeline_spec_pb2.ParameterType.NUMBER_INTEGER
    assert pipeline_job.pipeline_parameters(job, {"steps": "12"})["steps"].number_value == 12
    with pytest.raises(ValueError, match=r"--parameter steps=1\.5: does not fit the parameter's type NUMBER_INTEGER"):
        pipeline_job.pipeline_parameters(job, {"steps": "1.5"})


@pytest.mark.parametrize("text, expected", [("false", False), ("False", False), ("FALSE", False),
                                            ("true", True), ("True", True)])
def test_boolean_parameters_are_read_as_booleans(importer_spec, text, expected):
    job = pipeline_job.load(importer_spec)
    job.spec.root.input_definitions.parameters["use_tpu"].parameter_type = pipeline_spec_pb2.ParameterType.BOOLEAN
    value = pipeline_job.pipeline_parameters(job, {"use_tpu": text})["use_tpu"]
    assert value.WhichOneof("kind") == "bool_value" and value.bool_value is expected


@pytest.mark.parametrize("text", ["yes", "1", "0", ""])
def test_a_boolean_parameter_is_true_or_false_nothing_else(importer_spec, text):
    job = pipeline_job.load(importer_spec)
    job.spec.root.input_definitions.parameters["use_tpu"].parameter_type = pipeline_spec_pb2.ParameterType.BOOLEAN
    with pytest.raises(ValueError, match=f"--parameter use_tpu={text}: does not fit the parameter's type BOOLEAN"):
        pipeline_job.pipeline_parameters(job, {"use_tpu": text})


def test_a_schema_2_0_spec_is_refused_with_the_fix(tmp_path, capsys):
    path = compile_spec([latest_blessed_model_resolver()], tmp_path / "old.json", schema_2_1=False)
    assert cli.main(["run-spec", path, "--metadata_path", str(tmp_path / "m.sqlite")]) == 2
    assert "uses pipeline spec schema 2.0.0; run-spec needs 2.1 (recompile it with `bertpipe compile`)" \
        in capsys.readouterr().err


def test_resolvers_on_an_empty_store_resolve_nothing_and_leave_downstream_inputs_empty(tmp_path):
    path = compile_spec([latest_blessed_model_resolver()], tmp_path / "resolver.json")
    job = pipeline_job.load(path)
    assert set(job.tasks) == {BLESSING_TASK, MODEL_TASK}
    result = spec_runner.run_spec(path, str(tmp_path / "root"), str(tmp_path / "metadata.sqlite"))
    outputs = {task.name: task.outputs for task in result.tasks}
    assert outputs == {BLESSING_TASK: {"model_blessing": []}, MODEL_TASK: {"model": []}}
    executions = _executions(_store(tmp_path / "metadata.sqlite"))
    assert {name: e.last_known_state for name, e in executions.items()} == {
        BLESSING_TASK: metadata_store_pb2.Execution.COMPLETE, MODEL_TASK: metadata_store_pb2.Execution.COMPLETE}
    # The model resolver's own input (the blessing) is optional in the spec, as compiled.
    assert job.component(MODEL_TASK).input_definitions.artifacts["input"].is_optional
    # A task consuming the resolved model (as the Trainer's base_model) gets no such input
    # when its component declares it optional, and fails when the input is required.
    consumer = pipeline_spec_pb2.PipelineTaskSpec()
    consumer.inputs.artifacts["base_model"].task_output_artifact.producer_task = MODEL_TASK
    consumer.inputs.artifacts["base_model"].task_output_artifact.output_artifact_key = "model"
    produced = {(MODEL_TASK, "model"): []}
    component = pipeline_spec_pb2.ComponentSpec()
    component.input_definitions.artifacts["base_model"].is_optional = True
    assert executor_input.resolve_artifacts("BertTrainer", consumer, produced, component) == {}
    component.input_definitions.artifacts["base_model"].is_optional = False
    with pytest.raises(ValueError, match="required input artifact 'base_model' is empty"):
        executor_input.resolve_artifacts("BertTrainer", consumer, produced, component)


@pytest.fixture
def kubeflow_logs_to_this_test(monkeypatch):
    """bertpipe's main() gives the project loggers a handler on the stderr of the moment, once:
    drop an earlier test's (its captured stream is closed) so progress lines reach this test's."""
    monkeypatch.setattr(logging.getLogger("kubeflow"), "handlers", [])


def test_a_filter_it_cannot_answer_fails_the_resolver_task_with_one_line(tmp_path, capsys,
                                                                         kubeflow_logs_to_this_test):
    path = compile_spec([latest_blessed_model_resolver()], tmp_path / "resolver.json")
    spec = json.loads(open(path).read())
    executor = spec["pipelineSpec"]["deploymentSpec"]["executors"][f"{BLESSING_TASK}_executor"]
    executor["resolver"]["outputArtifactQueries"]["model_blessing"]["filter"] = \
        'schema_title="tfx.ModelBlessing" OR state=LIVE'
    with open(path, "w") as f:
        json.dump(spec, f)
    metadata_path = tmp_path / "metadata.sqlite"
    assert cli.main(["run-spec", path, "--metadata_path", str(metadata_path)]) == 2
    err = capsys.readouterr().err
    assert f"bertpipe run-spec: error: Resolver task {BLESSING_TASK}, output 'model_blessing': Cannot read " \
           f"the artifact filter" in err and "only AND-joined field=value clauses are supported" in err
    assert "Traceback" not in err
    executions = _executions(_store(metadata_path))
    assert set(executions) == {BLESSING_TASK}  # The run stopped there.
    assert executions[BLESSING_TASK].last_known_state == metadata_store_pb2.Execution.FAILED


def test_a_failing_task_stops_the_run_with_one_line_naming_its_log(tmp_path, capsys, kubeflow_logs_to_this_test):
    gen = VocabularyGen(corpus_pattern="/no/such/corpus.txt", vocab_size=100, do_lower_case=1)
    path = compile_spec([gen], tmp_path / "pipeline.json")
    spec = json.loads(open(path).read())
    container = spec["pipelineSpec"]["deploymentSpec"]["executors"]["VocabularyGen_executor"]["container"]
    container["command"] = ["python", "-c", "import sys; print('no corpus here'); sys.exit(3)"]
    with open(path, "w") as f:
        json.dump(spec, f)
    metadata_path = tmp_path / "metadata.sqlite"
    status = cli.main(["run-spec", path, "--pipeline_root", str(tmp_path / "root"), "--metadata_path",
                       str(metadata_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert "Traceback" not in "\n".join(err)
    assert err[-1].startswith("bertpipe run-spec: error: task VocabularyGen failed "
                              "(executor exited with status 3); its log: ")
    log_file = err[-1].rsplit("its log: ", 1)[1]
    assert log_file.startswith(str(tmp_path / "root")) and "no corpus here" in open(log_file).read()
    [execution] = _executions(_store(metadata_path)).values()
    assert execution.last_known_state == metadata_store_pb2.Execution.FAILED
    assert execution.custom_properties["log_file"].string_value == log_file


def test_a_driver_that_writes_no_output_fails_its_task(tmp_path, capsys, kubeflow_logs_to_this_test):
    example_gen = tfx.components.ImportExampleGen(input_base=str(tmp_path / "records"))
    path = compile_spec([example_gen], tmp_path / "pipeline.json")
    spec = json.loads(open(path).read())
    container = spec["pipelineSpec"]["deploymentSpec"]["executors"]["ImportExampleGen_executor"]["container"]
    container["lifecycle"]["preCacheCheck"]["command"] = ["python", "-c", "print('driver ran')"]
    with open(path, "w") as f:
        json.dump(spec, f)
    metadata_path = tmp_path / "metadata.sqlite"
    assert cli.main(["run-spec", path, "--pipeline_root", str(tmp_path / "root"),
                     "--metadata_path", str(metadata_path)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("bertpipe run-spec: error: task ImportExampleGen failed (its preCacheCheck driver "
                           "wrote no ") and "executor_output.json); its log: " in last
    assert "driver ran" in open(last.rsplit("its log: ", 1)[1]).read()
    [execution] = _executions(_store(metadata_path)).values()
    assert execution.last_known_state == metadata_store_pb2.Execution.FAILED


def test_container_task_input_carries_upstream_names_types_and_metadata(tmp_path):
    """What TFX's entrypoint reports (no type) is completed from the producer's output
    definitions before a downstream task receives it."""
    gen = VocabularyGen(corpus_pattern="/corpus.txt", vocab_size=100, do_lower_case=1)
    path = compile_spec([gen], tmp_path / "pipeline.json")
    job = pipeline_job.load(path)
    component = job.component("VocabularyGen")
    task_root = str(tmp_path / "root" / "job-1" / "VocabularyGen_1")
    built = executor_input.build(component, {}, {}, task_root, "job-1", "VocabularyGen")
    [template] = built.outputs.artifacts["vocabulary"].artifacts
    assert (template.name, template.uri) == ("job-1/VocabularyGen/vocabulary", os.path.join(task_root, "vocabulary"))
    assert built.outputs.output_file == os.path.join(task_root, "executor_output.json")
    reported = pipeline_spec_pb2.ExecutorOutput()
    reported.artifacts["vocabulary"].artifacts.add(name=template.name, uri=template.uri).metadata.update(
        {"vocab_size": 97.0})
    [artifact] = executor_input.outputs_after_run(built, reported, component)["vocabulary"]
    assert local_metadata.schema_title(artifact.type) == "components.Vocabulary"
    assert dict(artifact.metadata) == {"vocab_size": 97.0}

    consumer = pipeline_spec_pb2.PipelineTaskSpec()
    consumer.inputs.artifacts["vocabulary"].task_output_artifact.producer_task = "VocabularyGen"
    consumer.inputs.artifacts["vocabulary"].task_output_artifact.output_artifact_key = "vocabulary"
    produced = {("VocabularyGen", "vocabulary"): [artifact]}
    assert executor_input.resolve_artifacts("PretrainingDataGen", consumer, produced) == {"vocabulary": [artifact]}


def _record_training_job(store, job_name: str, blessed: bool, trainer_fails: bool = False) -> dict:
    """One job's Trainer and Evaluator as run-spec records them: the Model, then a ModelBlessing
    whose `current_model_id` is the model's resource name (what TFX's Evaluator writes there on
    Vertex AI) and `blessed` 1 or 0. A failed Trainer records nothing after it."""
    metadata = local_metadata.LocalVertexMetadata(store, "bert-pretraining", job_name)
    trainer = metadata.start_execution(local_metadata.CONTAINER_EXECUTION_TYPE, "BertTrainer", {})
    if trainer_fails:
        metadata.finish_execution(trainer, {}, state=metadata_store_pb2.Execution.FAILED)
        return {}
    model = pipeline_spec_pb2.RuntimeArtifact(name=executor_input.output_artifact_name(job_name, "BertTrainer", "model"),
                                              uri=f"/root/{job_name}/model")
    model.type.schema_title = "tfx.Model"
    metadata.finish_execution(trainer, {"model": [model]})
    evaluator = metadata.start_execution(local_metadata.CONTAINER_EXECUTION_TYPE, "Evaluator", {},
                                         inputs={"model": [model]})
    blessing = pipeline_spec_pb2.RuntimeArtifact(
        name=executor_input.output_artifact_name(job_name, "Evaluator", "blessing"), uri=f"/root/{job_name}/blessing")
    blessing.type.schema_title = "tfx.ModelBlessing"
    blessing.metadata.update({"blessed": int(blessed), "current_model_id": model.name})
    metadata.finish_execution(evaluator, {"blessing": [blessing]})
    return {"model": model.name, "blessing": blessing.name}


def test_the_resolver_returns_the_latest_blessed_model_of_several(tmp_path):
    """LatestBlessedModelStrategy's contract: the newest model that is blessed. Here: two blessed
    runs, a failed run, the newest blessed run, then a newer run that was not blessed."""
    metadata_path = tmp_path / "metadata.sqlite"
    store = _store(metadata_path)
    _record_training_job(store, "job-1", blessed=True)
    _record_training_job(store, "job-2", blessed=True)
    _record_training_job(store, "job-3", blessed=True, trainer_fails=True)
    newest_blessed = _record_training_job(store, "job-4", blessed=True)
    _record_training_job(store, "job-5", blessed=False)

    path = compile_spec([latest_blessed_model_resolver()], tmp_path / "resolver.json")
    result = spec_runner.run_spec(path, str(tmp_path / "root"), str(metadata_path))
    outputs = {task.name: task.outputs for task in result.tasks}
    [blessing] = outputs[BLESSING_TASK]["model_blessing"]
    [model] = outputs[MODEL_TASK]["model"]
    assert (blessing.name, model.name) == (newest_blessed["blessing"], newest_blessed["model"])
    assert model.uri == "/root/job-4/model" and local_metadata.schema_title(model.type) == "tfx.Model"
    # The store links the resolver's execution to that model, as TFX links a resolver's answer.
    [resolver] = [e for e in store.get_executions() if e.name == f"{result.job_name}/{MODEL_TASK}"]
    [answer] = [e for e in store.get_events_by_execution_ids([resolver.id])
                if e.type == metadata_store_pb2.Event.INTERNAL_OUTPUT]
    assert store.get_artifacts_by_id([answer.artifact_id])[0].name == newest_blessed["model"]


def test_latest_is_chosen_by_creation_time_then_id_whatever_the_order_given():
    def artifact(artifact_id, created):
        return metadata_store_pb2.Artifact(id=artifact_id, create_time_since_epoch=created)

    found = [artifact(3, 1000), artifact(9, 2000), artifact(4, 2000), artifact(12, 1500)]
    assert spec_runner.latest(found).id == 9
    assert spec_runner.latest(list(reversed(found))).id == 9
    assert spec_runner.latest([]) is None
