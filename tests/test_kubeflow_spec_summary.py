"""`bertpipe run-spec`'s closing summary on a store written by run-spec's own recorder
(kubeflow/local_metadata.py), shaped as a retraining job leaves it: the resolver re-outputs
the previous job's model (INTERNAL_OUTPUT) into the new job's context, and the Trainer and
Evaluator read it as base_model / baseline_model. The summary must report this job's model,
metrics, blessing and push, never the base model's. (The whole spec run is in
tests/test_kubeflow_run_spec_e2e.py.)"""
from __future__ import annotations

from kfp.pipeline_spec import pipeline_spec_pb2
from ml_metadata.proto import metadata_store_pb2

from kubeflow import local_metadata, spec_runner
from test_kubeflow_submit import write_tfma_evaluation

PIPELINE = "bert-pretraining"
CONTAINER, RESOLVER = local_metadata.CONTAINER_EXECUTION_TYPE, local_metadata.RESOLVER_EXECUTION_TYPE


def _artifact(job: str, task: str, key: str, title: str, uri: str, **metadata):
    artifact = pipeline_spec_pb2.RuntimeArtifact(name=f"{job}/{task}/{key}", uri=uri)
    artifact.type.schema_title = title
    artifact.metadata.update(metadata)
    return artifact


def _task(recorder, kind, name, inputs, outputs, event_type=metadata_store_pb2.Event.OUTPUT):
    execution = recorder.start_execution(kind, name, {}, inputs)
    recorder.finish_execution(execution, outputs, event_type=event_type)


def _job(store, root, job: str, accuracy: float, base_model=None):
    """Trainer -> Evaluator -> Pusher of one job (and its resolver, given a base model);
    returns the job's Model."""
    recorder = local_metadata.LocalVertexMetadata(store, PIPELINE, job)
    if base_model is not None:
        _task(recorder, RESOLVER, "latest_blessed_model_resolver-model-resolver", {}, {"model": [base_model]},
              event_type=metadata_store_pb2.Event.INTERNAL_OUTPUT)
    base = {"base_model": [base_model]} if base_model is not None else {}
    model = _artifact(job, "BertTrainer", "model", "tfx.Model", f"{root}/{job}/BertTrainer_1/model")
    _task(recorder, CONTAINER, "BertTrainer", base, {"model": [model]})
    metrics = {"masked_lm_accuracy": accuracy, "masked_lm_loss": 3.0, "next_sentence_accuracy": 0.7,
               "next_sentence_loss": 0.6}
    evaluation = _artifact(job, "Evaluator", "evaluation", "tfx.ModelEvaluation",
                           write_tfma_evaluation(f"{root}/{job}/Evaluator_2/evaluation", metrics))
    blessing = _artifact(job, "Evaluator", "blessing", "tfx.ModelBlessing", f"{root}/{job}/Evaluator_2/blessing",
                         blessed=1, current_model_id=model.name)
    baseline = {"baseline_model": [base_model]} if base_model is not None else {}
    _task(recorder, CONTAINER, "Evaluator", {"model": [model], **baseline},
          {"evaluation": [evaluation], "blessing": [blessing]})
    pushed = _artifact(job, "Pusher", "pushed_model", "tfx.PushedModel", f"{root}/{job}/Pusher_3/pushed_model",
                       pushed=1, pushed_destination=f"{root}/serving_model/{job}")
    _task(recorder, CONTAINER, "Pusher", {"model": [model], "model_blessing": [blessing]}, {"pushed_model": [pushed]})
    return model


def _result(root, metadata_path, job):
    task = spec_runner.TaskResult(name=spec_runner.PUSHER_TASK, kind="container", execution_id=0, outputs={},
                                  seconds=0.0)
    return spec_runner.JobResult(job_name=job, pipeline_name=PIPELINE, pipeline_root=str(root),
                                 metadata_path=metadata_path, tasks=[task])


def test_the_retraining_jobs_summary_reports_its_own_model_not_the_base_model(tmp_path):
    metadata_path = str(tmp_path / "metadata.sqlite")
    store = local_metadata.open_store(metadata_path)
    first = _job(store, tmp_path, "bert-pretraining-1", accuracy=0.25)
    second = _job(store, tmp_path, "bert-pretraining-2", accuracy=0.5, base_model=first)
    summary = spec_runner.summarize(_result(tmp_path, metadata_path, "bert-pretraining-2"))
    assert summary.run_id == "bert-pretraining-2"
    assert summary.model_uri == second.uri
    assert summary.metrics["masked_lm_accuracy"] == 0.5
    assert summary.blessed and summary.pushed_uri == f"{tmp_path}/serving_model/bert-pretraining-2"
    text = summary.render()
    assert "masked_lm_accuracy = 0.500000" in text and "blessed:          yes" in text
    first_summary = spec_runner.summarize(_result(tmp_path, metadata_path, "bert-pretraining-1"))
    assert first_summary.model_uri == first.uri and first_summary.metrics["masked_lm_accuracy"] == 0.25


def test_a_spec_without_a_pusher_has_no_summary(tmp_path):
    result = spec_runner.JobResult(job_name="j", pipeline_name=PIPELINE, pipeline_root=str(tmp_path),
                                   metadata_path=str(tmp_path / "m.sqlite"), tasks=[])
    assert spec_runner.summarize(result) is None
