"""VertexBertTrainer: BertTrainer run as a Vertex AI CustomJob (machine, accelerators, workers).

The pipeline's Trainer task then only launches and watches the job: TFX's Vertex AI
trainer executor (tfx.extensions.google_cloud_ai_platform) reads the CustomJob from
custom_config, submits it through Vertex AI's JobService and polls it to the end. Every
replica of the job runs `python -m tfx.scripts.run_executor` with BertTrainerExecutor and
the task's own inputs and outputs, so the Vocabulary input still reaches run_fn as
custom_config["vocab_file"] and the lineage is that of BertTrainer.
"""
from __future__ import annotations

import re

from tfx.dsl.components.base import executor_spec
from tfx.extensions.google_cloud_ai_platform import constants
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_trainer_executor

from components.trainer.component import BertTrainer, BertTrainerExecutor, record_trained_model


class VertexBertTrainerExecutor(vertex_trainer_executor.GenericExecutor):
    """Launches the CustomJob whose replicas run BertTrainerExecutor."""

    def _GetExecutorClass(self):
        return BertTrainerExecutor

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        try:
            super().Do(input_dict, output_dict, exec_properties)
        except RuntimeError as e:
            raise RuntimeError(failed_job_message(str(e))) from e
        # This task reports the Model to Vertex ML Metadata: record its data and base model here.
        record_trained_model(input_dict, output_dict)


def failed_job_message(tfx_message: str) -> str:
    """One line from TFX's "Job '<name>' did not succeed. Detailed response <CustomJob>" (the
    whole job, dozens of lines): the job, its final state and Vertex AI's error message."""
    name = re.search(r"Job '([^']+)'", tfx_message)
    state = re.search(r"\bstate: (JOB_STATE_[A-Z_]+)", tfx_message)
    error = re.search(r'message: "((?:[^"\\]|\\.)*)"', tfx_message)
    if not name:
        return tfx_message
    return (f"The Trainer's Vertex AI training job {name.group(1)} ended "
            f"{state.group(1) if state else 'unsuccessfully'}: {error.group(1) if error else 'no error message'} "
            f"(its logs: Vertex AI > Training > Custom jobs in the Cloud console).")


class VertexBertTrainer(BertTrainer):
    """BertTrainer whose training runs as a Vertex AI CustomJob (see `vertex_job_config`)."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(VertexBertTrainerExecutor)


def vertex_job_config(region: str, training_args: dict) -> dict:
    """The custom_config entries TFX's Vertex AI trainer executor reads.

    Args:
      region: Vertex AI region of the job (its endpoint is REGION-aiplatform.googleapis.com).
      training_args: {"project": ..., "job_spec": CustomJobSpec as a dict with worker_pool_specs}.
    """
    return {constants.ENABLE_VERTEX_KEY: True, constants.VERTEX_REGION_KEY: region,
            vertex_trainer_executor.TRAINING_ARGS_KEY: training_args}
