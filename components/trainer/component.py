"""BertTrainer: the standard TFX Trainer plus a `vocabulary` input.

The stock Trainer has no input for a vocabulary, so a model's lineage in ML-metadata
would not say which vocabulary it was trained with. BertTrainer keeps the Trainer's
spec, executor and run_fn contract (including the optional `base_model` input, which
retraining feeds with the latest blessed model), and adds one optional input channel;
its executor passes the vocabulary's path to run_fn through custom_config["vocab_file"]
(it is exported with the model as an asset).

The executor also decides, at run time, where the run checkpoints: the pipeline gives a
directory per configuration (`<root>/checkpoints/<config hash>`), and the executor puts
the run under a subdirectory named by the identity of its inputs: the Examples'
span, version and input_fingerprint (which ImportExampleGen records) and the base
model's id and uri (phase 2 of a two-phase run names its base, phase 1's model, by the
checkpoint directory phase 1 trained in, which a rerun keeps). A rerun after a kill (same configuration, data and base model)
finds its checkpoints and resumes; new data or a new base model starts a fresh
directory (warm-started from the base model), so a scheduled rerun of one compiled
spec trains on what is new instead of returning the old model.

After training it records on the Model artifact what it was trained from: `span` (the
newest span of its examples), `spans`, `examples_fingerprint`, `base_model_id`,
`base_model_uri`, `warm_start` and `total_train_steps`; the base_model INPUT event links
the two models in ML-metadata.

In a multi-worker job (Vertex AI runs this executor on every replica) only the chief
writes a model; on the other workers run_fn trains (its collectives need every worker)
and the stock check that a model was written is skipped.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any, Optional

import tensorflow as tf
from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.components.util import udf_utils
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import json_utils

from components import code_identity
from components.artifacts import Vocabulary, vocabulary_file
from components.trainer import warm_start
from components.trainer.strategy import is_chief

logger = logging.getLogger(__name__)

VOCABULARY_KEY = "vocabulary"
BASE_MODEL_KEY = standard_component_specs.BASE_MODEL_KEY


class BertTrainerSpec(standard_component_specs.TrainerSpec):
    """TrainerSpec with an optional Vocabulary input."""

    INPUTS = {**standard_component_specs.TrainerSpec.INPUTS,
              VOCABULARY_KEY: ChannelParameter(type=Vocabulary, optional=True)}


def _int_field(artifact: types.Artifact, name: str) -> Optional[int]:
    """`span` / `version` of an Examples artifact: ImportExampleGen records them as custom
    properties in ML-metadata; an Examples made in Python has them as properties."""
    if artifact.has_custom_property(name):
        return artifact.get_int_custom_property(name)
    if name in artifact.mlmd_artifact.properties:
        return getattr(artifact, name)
    return None


def _examples_identity(examples: list[types.Artifact]) -> list[dict]:
    """What names the training data across reruns: not the uri (ImportExampleGen copies the
    records into a new artifact each run) but span, version and the input fingerprint."""
    out = []
    for artifact in examples:
        fingerprint = (artifact.get_string_custom_property("input_fingerprint")
                       if artifact.has_custom_property("input_fingerprint") else artifact.uri)
        out.append({"span": _int_field(artifact, "span"), "version": _int_field(artifact, "version"),
                    "input_fingerprint": fingerprint})
    return sorted(out, key=json.dumps)


def _trained_in(model: types.Artifact) -> Optional[str]:
    """The checkpoint directory the model's run trained in (its warm_start.json), if recorded."""
    info_path = f"{model.uri.rstrip('/')}/{warm_start.CHECKPOINT_DIR}/{warm_start.INFO_FILE}"
    if not tf.io.gfile.exists(info_path):
        return None
    with tf.io.gfile.GFile(info_path) as f:
        return json.load(f).get("checkpoint_dir")


def run_checkpoint_dir(config_checkpoint_dir: str, examples: list[types.Artifact],
                       base_models: list[types.Artifact], base_by_training: bool = False) -> str:
    """`<config checkpoint dir>/<hash of the examples' identity and the base model>`.

    base_by_training: name the base model by the checkpoint directory it was trained in,
      not by its artifact. Phase 2 of a two-phase run does: a rerun after a kill in phase 2
      reruns phase 1, which resumes at its last step and exports the same weights as a NEW
      Model artifact; keyed on the artifact, phase 2 would start over instead of resuming.
    """
    def identity(model: types.Artifact) -> dict:
        trained_in = _trained_in(model) if base_by_training else None
        return {"trained_in": trained_in} if trained_in else {"id": model.id, "uri": model.uri}

    key = {"examples": _examples_identity(examples), "base_model": [identity(m) for m in base_models]}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return f"{config_checkpoint_dir.rstrip('/')}/run-{digest}"


def record_lineage(model: types.Artifact, examples: list[types.Artifact], base_models: list[types.Artifact],
                   trained_state: Optional[dict]) -> None:
    """Custom properties on the Model: its data and what it was warm-started from."""
    identity = _examples_identity(examples)
    spans = sorted({e["span"] for e in identity if e["span"] is not None})
    if spans:
        model.set_int_custom_property("span", spans[-1])
    model.set_string_custom_property("spans", json.dumps(spans))
    model.set_string_custom_property("examples_fingerprint", json.dumps([e["input_fingerprint"] for e in identity]))
    if base_models:
        model.set_int_custom_property("base_model_id", base_models[0].id)
        model.set_string_custom_property("base_model_uri", base_models[0].uri)
    if trained_state:
        model.set_string_custom_property("warm_start", trained_state["warm_start"])
        model.set_int_custom_property("total_train_steps", int(trained_state["total_steps"]))
    logger.info("Model %s: spans %s, base model %s, warm start %s.", model.uri, spans,
                base_models[0].uri if base_models else None, (trained_state or {}).get("warm_start"))


def check_replica_code(expected: Optional[dict], environ) -> None:
    """On a Vertex AI training job's replica (CHECK_CODE_ENV set by the job's container spec),
    refuses to train when the image's sources are not those the spec was compiled from: the
    job's command is TFX's, so kubeflow/code_check.py cannot wrap it as it wraps the steps'.

    Raises:
      ValueError: one line naming both source hashes and commits.
    """
    if environ.get(code_identity.CHECK_CODE_ENV) != "1" or not expected:
        return
    problem = code_identity.mismatch(expected, {"source_hash": code_identity.source_hash(),
                                                "git_commit": environ.get("BERTPIPE_GIT_COMMIT")})
    if problem:
        raise ValueError(f"Trainer replica: {problem}")


class BertTrainerExecutor(trainer_executor.GenericExecutor):
    """GenericExecutor that hands the Vocabulary artifact's file to run_fn, checkpoints per
    (configuration, data, base model) and records the model's lineage properties."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        custom_config = json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
        check_replica_code(custom_config.get("code_version"), os.environ)
        vocabularies = input_dict.get(VOCABULARY_KEY) or []
        if vocabularies:
            custom_config["vocab_file"] = vocabulary_file(artifact_utils.get_single_uri(vocabularies))
        examples = input_dict.get(standard_component_specs.EXAMPLES_KEY) or []
        base_models = input_dict.get(BASE_MODEL_KEY) or []
        if "checkpoint_dir" in custom_config:
            custom_config["checkpoint_dir"] = run_checkpoint_dir(custom_config["checkpoint_dir"], examples,
                                                                 base_models,
                                                                 base_by_training=custom_config.get("phase") == 2)
        exec_properties = {**exec_properties, standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps(custom_config)}
        if not is_chief():
            self._log_startup(input_dict, output_dict, exec_properties)
            run_fn = udf_utils.get_fn(exec_properties, "run_fn")
            run_fn(self._GetFnArgs(input_dict, output_dict, exec_properties))
            return
        super().Do(input_dict, output_dict, exec_properties)
        record_trained_model(input_dict, output_dict)


def record_trained_model(input_dict: dict[str, list[types.Artifact]],
                         output_dict: dict[str, list[types.Artifact]]) -> None:
    """record_lineage on the output Model, with what its run saved beside it (warm_start.json).

    Called by the executor that reports the Model to the orchestrator: BertTrainerExecutor, or,
    when training ran as a Vertex AI CustomJob, the pipeline task that launched it (the job's
    replicas set properties on their own copies of the artifact, which nobody reports).
    """
    model = artifact_utils.get_single_instance(output_dict[standard_component_specs.MODEL_KEY])
    info_path = f"{model.uri.rstrip('/')}/{warm_start.CHECKPOINT_DIR}/{warm_start.INFO_FILE}"
    trained = None
    if tf.io.gfile.exists(info_path):
        with tf.io.gfile.GFile(info_path) as f:
            trained = json.load(f)
    record_lineage(model, input_dict.get(standard_component_specs.EXAMPLES_KEY) or [],
                   input_dict.get(BASE_MODEL_KEY) or [], trained)


class BertTrainer(base_component.BaseComponent):
    """Trains BERT with `run_fn` (a Python path, installed with the project's package)."""

    SPEC_CLASS = BertTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(BertTrainerExecutor)

    def __init__(self, examples: types.BaseChannel, run_fn: str, custom_config: dict[str, Any],
                 train_args: trainer_pb2.TrainArgs, eval_args: trainer_pb2.EvalArgs,
                 vocabulary: Optional[types.BaseChannel] = None,
                 base_model: Optional[types.BaseChannel] = None):
        spec = BertTrainerSpec(
            examples=examples,
            vocabulary=vocabulary,
            base_model=base_model,
            train_args=train_args,
            eval_args=eval_args,
            run_fn=run_fn,
            custom_config=json_utils.dumps(custom_config),
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun))
        super().__init__(spec=spec)
