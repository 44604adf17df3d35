"""`create_pipeline`: the BERT pretraining DAG, pure (no I/O, no flags, no environment).

    corpus --VocabularyGen--> Vocabulary --PretrainingDataGen--> TFRecords (train/, eval/)
      --ImportExampleGen--> Examples --BertTrainer--> Model --Evaluator--> blessing --Pusher
                                        ^ Vocabulary (lineage: which vocab made which model)

With `config.examples_dir` (records made elsewhere, e.g. by the original
create_pretraining_data.py) the first two steps are skipped; a vocabulary given with
`config.vocab_file` is imported so that it still appears in the lineage.

ImportExampleGen takes a directory, not an artifact, so PretrainingDataGen writes its
records to a directory derived from the pipeline root and a fingerprint of everything
that determines the records; ImportExampleGen runs after it and copies them into its
own Examples artifact.

Spans: with `{SPAN}` in the corpus pattern, PretrainingDataGen writes the newest span's
records to `<records dir>/span-<n>/records` (with `config.num_spans` N > 1, a window of the
newest N spans under `<records dir>/window-<N>/`); with `{SPAN}` in `config.examples_dir`,
ImportExampleGen reads that pattern. Either way ImportExampleGen picks the newest span
and records its number (and version) on the Examples artifact.

Retraining (`retraining=True`) adds one node and two inputs:

    Resolver(LatestBlessedModelStrategy) --model--> BertTrainer.base_model  (warm start)
                                         --model--> Evaluator.baseline_model (change thresholds)

On the first run the resolver finds no blessed model: the Trainer starts from
--init_checkpoint or from scratch, and the Evaluator judges on the value bounds alone.

Two phases (`config.phase2`, see pipeline/phases.py) add a second line of data and a
second Trainer; phase 1 keeps the one-phase ids, phase 2's end in `Phase2`:

    Vocabulary --PretrainingDataGen--------> ImportExampleGen -------> BertTrainer (phase 1)
               --PretrainingDataGenPhase2--> ImportExampleGenPhase2 --> BertTrainerPhase2
                                                   BertTrainer.model --base_model--^
    BertTrainerPhase2.model and ImportExampleGenPhase2's eval split --> Evaluator --> Pusher

Only the final (phase-2) model is evaluated and pushed. When retraining, the resolver's
model warm-starts phase 1 (and is the Evaluator's baseline); phase 2 always warm-starts
from phase 1's model.
"""
from __future__ import annotations

import hashlib
import json
from typing import Optional

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components.artifacts import Vocabulary
from components.evaluator.eval_config import make_eval_config
from components.pretraining_data import spans
from components.pusher.executor import REGISTRY_CONFIG_KEY, AtomicPusherExecutor
from components.pretraining_data.component import PretrainingDataGen, VocabularyGen
from components.trainer.component import BertTrainer
from components.trainer.params import DynamicMasking, TrainerParams
from pipeline.vertex_resources import VertexResources
from pipeline.config import PipelineConfig
from pipeline.phases import check_position_embeddings, phase2_data_options, phase2_step_cost, phase2_training

RUN_FN = "components.trainer.run_fn.run_fn"
# Phase 2's component ids: phase 1 keeps the one-phase ids.
PHASE2_SUFFIX = "Phase2"
# The id the Vertex spec and its local executor know the resolver by.
LATEST_BLESSED_MODEL_RESOLVER = "latest_blessed_model_resolver"


def records_fingerprint(config: PipelineConfig) -> str:
    """A short hash of the inputs that determine the pretraining records."""
    key = json.dumps({"corpus": config.corpus_pattern, "vocab_file": config.vocab_file,
                      "vocab_size": config.vocab_size, "data": json.loads(config.data.to_json())},
                     sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def training_fingerprint(config: PipelineConfig) -> str:
    """A short hash naming the run's stable checkpoint directory (same config -> resume)."""
    return hashlib.sha256(config.to_json().encode()).hexdigest()[:16]


def phase_checkpoint_dirs(config: PipelineConfig, pipeline_root: str) -> tuple[str, Optional[str]]:
    """(phase 1's, phase 2's or None) stable checkpoint directories; the Trainer puts each run
    under a run-<inputs> subdirectory. Phase 1's is the one-phase config's: phase 2's settings
    do not touch phase 1, so changing them keeps phase 1's checkpoints (and resumes it)."""
    root = f"{pipeline_root.rstrip('/')}/checkpoints"
    phase1 = f"{root}/{training_fingerprint(config.replace(phase2=None))}"
    return phase1, (f"{root}/{training_fingerprint(config)}-phase2" if config.phase2 is not None else None)


def split_span_pattern(pattern: str) -> tuple[str, str]:
    """`/data/records/span-{SPAN}` -> (`/data/records`, `span-{SPAN}`): ImportExampleGen's
    input_base must be a plain directory; its split patterns may hold the placeholders."""
    parts = pattern.rstrip("/").split("/")
    first = next(i for i, part in enumerate(parts) if "{SPAN}" in part or "{VERSION}" in part)
    return "/".join(parts[:first]) or "/", "/".join(parts[first:])


def _example_gen_input(presplit: bool, prefix: str = "") -> tuple[example_gen_pb2.Input,
                                                                   Optional[example_gen_pb2.Output]]:
    """Split patterns under `prefix` (a span pattern relative to input_base, or "")."""
    under = f"{prefix}/" if prefix else ""
    if presplit:
        return example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name="train", pattern=f"{under}train/*"),
            example_gen_pb2.Input.Split(name="eval", pattern=f"{under}eval/*"),
        ]), None
    # One directory of records: hold out 1 in 10 (by hash of the example) for eval.
    return example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single", pattern=f"{under}*")]), \
        example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=9),
            example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
        ]))


def _resource_spec(cpu_limit: Optional[float], memory_limit_gb: Optional[float]):
    """KFP's container ResourceSpec: TFX's Kubeflow V2 compiler copies a component's
    platform_config of this type into its container spec (memory in GB)."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
    if cpu_limit:
        spec.cpu_limit = cpu_limit
    if memory_limit_gb:
        spec.memory_limit = memory_limit_gb
    return spec


def _generated_examples(config: PipelineConfig, vocabulary, pipeline_root: str, code_version_json: str):
    """(PretrainingDataGen, ImportExampleGen) making `config.data`'s records from the corpus.

    The records go to a directory named by what determines them, so each phase has its own."""
    records_dir = f"{pipeline_root.rstrip('/')}/pretraining_records/{records_fingerprint(config)}"
    data_gen = PretrainingDataGen(vocabulary=vocabulary, corpus_pattern=config.corpus_pattern,
                                  records_dir=records_dir, options_json=config.data.to_json(),
                                  num_spans=config.num_spans, code_version=code_version_json)
    layout = spans.records_layout(config.corpus_pattern) if spans.has_span(config.corpus_pattern) else ""
    input_config, _ = _example_gen_input(presplit=True, prefix=layout)
    records_base = (records_dir if config.num_spans == 1
                    else f"{records_dir}/{spans.window_subdir(config.num_spans)}")
    example_gen = tfx.components.ImportExampleGen(input_base=records_base, input_config=input_config)
    example_gen.add_upstream_node(data_gen)
    return data_gen, example_gen


def _dynamic_masking(data) -> Optional[DynamicMasking]:
    """The Trainer's masking rule when the records are unmasked (--dynamic_masking), else None."""
    return DynamicMasking(data.masked_lm_prob, data.do_whole_word_mask) if data.dynamic_masking else None


def _trainer(params: TrainerParams, examples, vocabulary, base_model, resources, component_id: str):
    """A BertTrainer for `params`, or with `resources` (Vertex AI) one that trains as a CustomJob."""
    trainer_class, custom_config = BertTrainer, params.to_custom_config()
    if resources is not None:
        # Deferred: the Vertex AI client libraries are needed only when compiling for it.
        from components.trainer.vertex_component import VertexBertTrainer, vertex_job_config

        trainer_class = VertexBertTrainer
        custom_config.update(vertex_job_config(resources.region, resources.training_args()))
    trainer = trainer_class(
        examples=examples, vocabulary=vocabulary, base_model=base_model, run_fn=RUN_FN,
        custom_config=custom_config,
        train_args=tfx.proto.TrainArgs(num_steps=params.training.num_train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=params.training.max_eval_steps))
    if resources is not None or component_id != "BertTrainer":
        trainer.with_id(component_id)  # one task name, wherever it trains
    return trainer


def create_pipeline(
    config: PipelineConfig,
    bert_config: dict,
    pipeline_root: str,
    serving_model_dir: str,
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
    beam_pipeline_args: Optional[list[str]] = None,
    examples_presplit: bool = True,
    enable_cache: bool = False,
    code_version: Optional[dict] = None,
    retraining: bool = False,
    vertex_resources: Optional[VertexResources] = None,
    model_registry: Optional[dict] = None,
) -> tfx.dsl.Pipeline:
    """Builds the pipeline.

    Args:
      config: data, model and training configuration (validated by the caller).
      bert_config: the BertConfig as a dict; a `vocab_size` of None means "the size of the
        vocabulary the Trainer receives".
      pipeline_root: where artifacts go (local path or gs://).
      serving_model_dir: the Pusher's destination.
      metadata_connection_config: ML-metadata store (None on Vertex AI, which has its own).
      beam_pipeline_args: for the Beam-based components (DirectRunner locally, Dataflow at scale).
      examples_presplit: with config.examples_dir, whether it has train/ and eval/ subdirectories
        (else one directory, split 9:1 by ImportExampleGen).
      enable_cache: reuse earlier executions' outputs for unchanged inputs.
      code_version: pipeline.code_version.CodeVersion.to_dict() of the code building the
        pipeline; it reaches the Trainer's custom_config and the `code_version` execution
        property of VocabularyGen and PretrainingDataGen (recorded in ML-metadata with each
        execution, and part of their cache keys). The stock components (ImportExampleGen,
        Evaluator, Pusher) take no free-form property; they share the run's pipeline_run
        context with those executions, which is how lineage attributes them.
      retraining: warm-start the Trainer from the latest blessed model and bless only a
        candidate that does not fall behind it (config.evaluation's max_*_drop).
      vertex_resources: for Vertex AI, the Trainer's machine spec (it then trains as a Vertex AI
        CustomJob) and the other steps' CPU/memory limits; None locally.
    """
    code_version_json = json.dumps(code_version, sort_keys=True) if code_version else ""
    components = []
    vocabulary = None
    if config.vocab_file:
        vocab_importer = tfx.dsl.Importer(source_uri=config.vocab_file, artifact_type=Vocabulary,
                                          reimport=False).with_id("VocabularyImporter")
        components.append(vocab_importer)
        vocabulary = vocab_importer.outputs["result"]

    if config.examples_dir is None:
        if vocabulary is None:
            vocab_gen = VocabularyGen(corpus_pattern=config.corpus_pattern, vocab_size=config.vocab_size,
                                      do_lower_case=int(config.data.do_lower_case),
                                      code_version=code_version_json)
            components.append(vocab_gen)
            vocabulary = vocab_gen.outputs["vocabulary"]
        data_gen, example_gen = _generated_examples(config, vocabulary, pipeline_root, code_version_json)
        components.append(data_gen)
    else:
        input_base, prefix = (split_span_pattern(config.examples_dir) if spans.has_span(config.examples_dir)
                              else (config.examples_dir, ""))
        input_config, output_config = _example_gen_input(presplit=examples_presplit, prefix=prefix)
        example_gen = tfx.components.ImportExampleGen(input_base=input_base, input_config=input_config,
                                                      output_config=output_config)
    components.append(example_gen)
    final_examples = example_gen.outputs["examples"]
    if config.phase2 is not None:
        # Same corpus, vocabulary and masking rule, at phase 2's length (config.validate
        # refused phase 2 without a corpus).
        data_gen2, example_gen2 = _generated_examples(
            config.replace(data=phase2_data_options(config.data, config.phase2)), vocabulary, pipeline_root,
            code_version_json)
        data_gen2.with_id(f"PretrainingDataGen{PHASE2_SUFFIX}")
        example_gen2.with_id(f"ImportExampleGen{PHASE2_SUFFIX}")
        components += [data_gen2, example_gen2]
        final_examples = example_gen2.outputs["examples"]

    base_model = None
    if retraining:
        resolver = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
            model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        ).with_id(LATEST_BLESSED_MODEL_RESOLVER)
        components.append(resolver)
        base_model = resolver.outputs["model"]

    check_position_embeddings(bert_config, config.data.max_seq_length, config.phase2,
                              config.bert_config_file or f"--bert_preset {config.bert_preset}")
    phase1_dir, phase2_dir = phase_checkpoint_dirs(config, pipeline_root)
    two_phases = config.phase2 is not None
    later = {}
    if two_phases:
        later = dict(later_phase_steps=config.phase2.num_train_steps,
                     later_step_cost=phase2_step_cost(config.training, config.data, config.phase2))
    trainer = _trainer(
        TrainerParams(bert_config=bert_config, training=config.training, max_seq_length=config.data.max_seq_length,
                      max_predictions_per_seq=config.data.max_predictions_per_seq, checkpoint_dir=phase1_dir,
                      code_version=code_version, phase=1 if two_phases else None,
                      dynamic_masking=_dynamic_masking(config.data), **later),
        example_gen.outputs["examples"], vocabulary, base_model,
        vertex_resources.trainer if vertex_resources else None, "BertTrainer")
    components.append(trainer)
    vertex_trainers = [trainer] if vertex_resources and vertex_resources.trainer else []
    if two_phases:
        phase2 = config.phase2
        # Without a machine of its own, phase 2 trains on phase 1's.
        phase2_resources = (vertex_resources.phase2_trainer or vertex_resources.trainer) if vertex_resources \
            else None
        trainer = _trainer(
            TrainerParams(bert_config=bert_config, training=phase2_training(config.training, phase2),
                          max_seq_length=phase2.max_seq_length,
                          max_predictions_per_seq=phase2.max_predictions_per_seq, checkpoint_dir=phase2_dir,
                          code_version=code_version, phase=2,
                          dynamic_masking=_dynamic_masking(phase2_data_options(config.data, phase2))),
            final_examples, vocabulary, trainer.outputs["model"], phase2_resources, f"BertTrainer{PHASE2_SUFFIX}")
        components.append(trainer)
        vertex_trainers += [trainer] if phase2_resources else []

    # `trainer` is now the last phase's: only the final model is evaluated and pushed.
    gate = config.evaluation
    evaluator = tfx.components.Evaluator(
        examples=final_examples, model=trainer.outputs["model"], baseline_model=base_model,
        eval_config=make_eval_config(
            gate.min_masked_lm_accuracy, gate.min_next_sentence_accuracy,
            max_masked_lm_accuracy_drop=gate.max_masked_lm_accuracy_drop if retraining else None,
            max_next_sentence_accuracy_drop=gate.max_next_sentence_accuracy_drop if retraining else None))
    components.append(evaluator)

    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir)),
        custom_config={REGISTRY_CONFIG_KEY: model_registry} if model_registry else None,
        custom_executor_spec=executor_spec.ExecutorClassSpec(AtomicPusherExecutor))
    components.append(pusher)

    steps = vertex_resources.steps if vertex_resources else None
    if steps is not None and (steps.cpu_limit or steps.memory_limit_gb):
        # Not the Vertex Trainer's task, which only polls its CustomJob, nor an Importer,
        # which runs no container.
        sized = [c for c in components
                 if not isinstance(c, tfx.dsl.Importer) and not any(c is t for t in vertex_trainers)]
        for component in sized:
            component.with_platform_config(_resource_spec(steps.cpu_limit, steps.memory_limit_gb))

    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=pipeline_root, components=components,
        enable_cache=enable_cache, metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [])
