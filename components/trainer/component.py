"""BertTrainer: the standard TFX Trainer plus a `vocabulary` input.

The stock Trainer has no input for a vocabulary, so a model's lineage in ML-metadata
would not say which vocabulary it was trained with. BertTrainer keeps the Trainer's
spec, executor and run_fn contract, and adds one optional input channel; its
executor passes the vocabulary's path to run_fn through custom_config["vocab_file"]
(it is exported with the model as an asset).

In a multi-worker job (Vertex AI runs this executor on every replica) only the chief
writes a model; on the other workers run_fn trains (its collectives need every worker)
and the stock check that a model was written is skipped.
"""
from __future__ import annotations

import json
from typing import Any, Optional

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.components.util import udf_utils
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import json_utils

from components.artifacts import Vocabulary, vocabulary_file
from components.trainer.strategy import is_chief

VOCABULARY_KEY = "vocabulary"


class BertTrainerSpec(standard_component_specs.TrainerSpec):
    """TrainerSpec with an optional Vocabulary input."""

    INPUTS = {**standard_component_specs.TrainerSpec.INPUTS,
              VOCABULARY_KEY: ChannelParameter(type=Vocabulary, optional=True)}


class BertTrainerExecutor(trainer_executor.GenericExecutor):
    """GenericExecutor that hands the Vocabulary artifact's file to run_fn."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        vocabularies = input_dict.get(VOCABULARY_KEY) or []
        if vocabularies:
            custom_config = json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
            custom_config["vocab_file"] = vocabulary_file(artifact_utils.get_single_uri(vocabularies))
            exec_properties = {**exec_properties,
                               standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps(custom_config)}
        if is_chief():
            super().Do(input_dict, output_dict, exec_properties)
            return
        self._log_startup(input_dict, output_dict, exec_properties)
        run_fn = udf_utils.get_fn(exec_properties, "run_fn")
        run_fn(self._GetFnArgs(input_dict, output_dict, exec_properties))


class BertTrainer(base_component.BaseComponent):
    """Trains BERT with `run_fn` (a Python path, installed with the project's package)."""

    SPEC_CLASS = BertTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(BertTrainerExecutor)

    def __init__(self, examples: types.BaseChannel, run_fn: str, custom_config: dict[str, Any],
                 train_args: trainer_pb2.TrainArgs, eval_args: trainer_pb2.EvalArgs,
                 vocabulary: Optional[types.BaseChannel] = None):
        spec = BertTrainerSpec(
            examples=examples,
            vocabulary=vocabulary,
            train_args=train_args,
            eval_args=eval_args,
            run_fn=run_fn,
            custom_config=json_utils.dumps(custom_config),
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun))
        super().__init__(spec=spec)
