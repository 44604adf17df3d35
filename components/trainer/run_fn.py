"""The TFX Trainer's entry point: `run_fn(fn_args)`, run_pretraining.py's main() in TFX.

It turns the Trainer's arguments into explicit values (config is read here, at the
entry point, and passed down), checks the data against them, picks the strategy and
precision, trains (resuming if a checkpoint exists), evaluates like do_eval, writes
eval_results.txt next to the TensorBoard logs, and exports the SavedModel.

With several workers (MultiWorkerMirroredStrategy) every worker trains and evaluates,
since both are collective, but only the chief writes the run's outputs: checkpoints,
bert_config.json, TensorBoard logs, eval_results.txt and the SavedModel. The other
workers save their (collective) checkpoints and logs into a scratch directory that they
delete at the end, as TensorFlow's multi-worker guide prescribes.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

import logging
import tensorflow as tf
import tf_keras as keras

from components.bert.config import BertConfig
from components.bert.optimization import create_optimizer
from components.bert.pretraining_model import BertPretrainingModel, ensure_built
from components.bert.tf1_checkpoint import is_tf1_checkpoint, load_tf1_checkpoint
from components.trainer import dynamic_masking, export, input_pipeline, packing, precision, warm_start
from components.trainer import strategy as strategy_lib
from components.trainer.data_checks import check_split
from components.trainer.params import TrainerParams
from components.trainer.training_loop import (LoopSettings, TrainingState, evaluate, train,
                                              write_eval_results)

logger = logging.getLogger(__name__)

EVAL_RESULTS_FILE = "eval_results.txt"


def expand_patterns(patterns: list[str]) -> list[str]:
    """The Trainer passes each split as a file pattern (`.../Split-train/*`); the loop wants files."""
    return sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))


def warm_starter(init_checkpoint: str):
    """Loads weights only (no step, no optimizer slots), from a TF1 original or a TF2 checkpoint."""
    def load(model: BertPretrainingModel) -> None:
        if is_tf1_checkpoint(init_checkpoint):
            names = load_tf1_checkpoint(model, init_checkpoint)
            logger.info("Warm-started %d variables from the TF1 checkpoint %s", len(names), init_checkpoint)
        else:
            tf.train.Checkpoint(model=model).read(init_checkpoint).expect_partial().assert_existing_objects_matched()
            logger.info("Warm-started from the checkpoint %s", init_checkpoint)
    return load


def resolve_bert_config(values: dict, vocab_file: str | None) -> BertConfig:
    """The BertConfig, its vocab_size taken from the vocabulary when the config leaves it open (None).

    The pipeline is built before its vocabulary is learned, so the learned size is known only here.
    """
    values = dict(values)
    if vocab_file:
        with tf.io.gfile.GFile(vocab_file) as f:
            vocab_size = sum(1 for line in f if line.strip())
        if values.get("vocab_size") is None:
            values["vocab_size"] = vocab_size
        elif values["vocab_size"] < vocab_size:
            raise ValueError(f"The BERT config's vocab_size {values['vocab_size']} is smaller than the "
                             f"vocabulary {vocab_file} ({vocab_size} tokens): fix vocab_size in --bert_config_file.")
    elif values.get("vocab_size") is None:
        raise ValueError("No vocabulary reached the Trainer and the BERT config has no vocab_size: "
                         "give --vocab_file or a --bert_config_file with vocab_size.")
    return BertConfig.from_dict(values)


def build_state(bert_config: BertConfig, params: TrainerParams,
                strategy: tf.distribute.Strategy) -> TrainingState:
    """Model and optimizer with their variables built, under the strategy's scope."""
    t = params.training
    with strategy.scope():
        model = BertPretrainingModel(bert_config, use_one_hot_embeddings=t.use_tpu)
        ensure_built(model)
        optimizer = create_optimizer(t.learning_rate, t.num_train_steps, t.num_warmup_steps,
                                     optimizer_type=t.optimizer_type, bias_correction=t.adam_bias_correction)
        # tf_keras compiles each variable's update with XLA only when it sees a GPU; with
        # --use_xla the (memory-bound, elementwise) AdamW/LAMB update is fused on any device.
        optimizer.jit_compile = t.use_xla or t.throughput_mode
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    return TrainingState(model=model, optimizer=optimizer, strategy=strategy)


def _trained_state(bert_config: BertConfig, params: TrainerParams, global_step: int, total_steps: int,
                   how: str = "none", base_model: str | None = None) -> warm_start.TrainedState:
    t = params.training
    return warm_start.TrainedState(
        bert_config=bert_config.to_dict(), max_seq_length=params.max_seq_length,
        max_predictions_per_seq=params.max_predictions_per_seq, vocab_file=params.vocab_file,
        vocab_sha256=warm_start.file_sha256(params.vocab_file), optimizer_type=t.optimizer_type,
        adam_bias_correction=t.adam_bias_correction, global_step=global_step, total_steps=total_steps,
        warm_start=how, base_model=base_model, checkpoint_dir=params.checkpoint_dir)


@contextlib.contextmanager
def _output_dirs(chief: bool, checkpoint_dir: str, model_run_dir: str):
    """(checkpoint save dir, TensorBoard dir) of this worker: the run's own for the chief, a
    scratch directory, deleted afterwards, for the others."""
    if chief:
        yield checkpoint_dir, os.path.join(model_run_dir, "train")
        return
    scratch = tempfile.mkdtemp(prefix="bert-worker-")
    try:
        yield os.path.join(scratch, "checkpoints"), os.path.join(scratch, "train")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def pretrain(params: TrainerParams, train_files: list[str], eval_files: list[str], serving_model_dir: str,
             model_run_dir: str, strategy: tf.distribute.Strategy | None = None,
             base_model: str | None = None) -> dict:
    """do_train then do_eval, then export (the chief only). Returns the eval metrics.

    Plain arguments, so tests drive it without TFX.

    Args:
      base_model: the Format-Serving directory of a model to warm-start from (see
        warm_start.py); it wins over --init_checkpoint. Beside `serving_model_dir` the
        model's own Checkpoint/ is written, for its successors.
    """
    t = params.training
    if strategy is None:
        # First, before any TensorFlow op: MultiWorkerMirroredStrategy configures the
        # collective ops, which TensorFlow allows only before the runtime starts.
        strategy = strategy_lib.select_strategy(
            strategy_lib.tpu_address_from(t.use_tpu, t.tpu_name, t.tpu_zone, t.gcp_project),
            collective_timeout_seconds=t.collective_timeout_seconds)
    bert_config = resolve_bert_config(params.bert_config, params.vocab_file)
    if params.max_seq_length > bert_config.max_position_embeddings:
        raise ValueError(f"--max_seq_length {params.max_seq_length} exceeds the BERT config's "
                         f"max_position_embeddings {bert_config.max_position_embeddings}.")
    rule = None
    if params.dynamic_masking is not None:
        if not params.vocab_file:
            raise ValueError("--dynamic_masking needs the vocabulary (its [CLS], [SEP], [MASK] ids): give "
                             "--vocab_file, or let the pipeline learn one.")
        rule = dynamic_masking.rule_from_vocab(
            params.vocab_file, params.max_predictions_per_seq, params.dynamic_masking.masked_lm_prob,
            params.dynamic_masking.do_whole_word_mask)
    check_split("train", train_files, params.max_seq_length, params.max_predictions_per_seq,
                masked=rule is None)
    check_split("eval", eval_files, params.max_seq_length, params.max_predictions_per_seq)

    keras.utils.set_random_seed(t.seed)
    # False only on the non-chief workers of a multi-worker strategy.
    chief = strategy.extended.should_checkpoint
    kind = strategy_lib.strategy_kind(strategy)
    policy = precision.choose_precision(t.mixed_precision, kind)
    replicas = strategy.num_replicas_in_sync
    for flag in ("train_batch_size", "eval_batch_size"):
        if getattr(t, flag) % replicas:
            raise ValueError(f"--{flag} {getattr(t, flag)} is not divisible by the {replicas} replicas.")
    logger.info("Strategy %s (%s, %d replicas), precision %s, XLA %s%s.", type(strategy).__name__, kind,
                 replicas, policy, t.use_xla or t.throughput_mode,
                 ", throughput mode (packed rows)" if t.throughput_mode else "")

    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        if chief:
            tf.io.gfile.makedirs(params.checkpoint_dir)
            bert_config.to_json_file(os.path.join(params.checkpoint_dir, "bert_config.json"))
        state = build_state(bert_config, params, strategy)
        starter, how, base_steps = None, "none", 0
        if base_model:
            # Checked before training, so a mismatch costs nothing and trains nothing.
            base = warm_start.load_trained_state(base_model)
            how = warm_start.plan_warm_start(base, os.path.dirname(base_model.rstrip("/")),
                                             _trained_state(bert_config, params, 0, 0), phase=params.phase)
            base_steps = base.total_steps

            def starter(model, how=how):  # model is state.model; the optimizer is restored too.
                warm_start.restore(state, base_model, how)
            if t.init_checkpoint:
                logger.info("--init_checkpoint %s is not used: warm-starting from the base model %s.",
                            t.init_checkpoint, base_model)
        elif t.init_checkpoint:
            starter, how = warm_starter(t.init_checkpoint), "init_checkpoint"

        def train_dataset(context: tf.distribute.InputContext) -> tf.data.Dataset:
            return input_pipeline.make_dataset(
                train_files, context.get_per_replica_batch_size(t.train_batch_size), params.max_seq_length,
                params.max_predictions_per_seq, is_training=True, seed=t.seed, input_context=context,
                dynamic_masking=rule,
                pack_sequences=packing.DEFAULT_MAX_SEQUENCES_PER_ROW if t.throughput_mode else 0)

        settings = LoopSettings(
            num_train_steps=t.num_train_steps, steps_per_execution=t.iterations_per_loop,
            save_checkpoints_steps=t.save_checkpoints_steps, keep_checkpoint_max=t.keep_checkpoint_max,
            global_batch_size=t.train_batch_size, checkpoint_input=kind != "tpu",
            use_xla=t.use_xla or t.throughput_mode,
            phase=params.phase_name, progress_interval_seconds=params.progress_interval_seconds,
            later_phase_steps=params.later_phase_steps, later_step_cost=params.later_step_cost)
        with _output_dirs(chief, params.checkpoint_dir, model_run_dir) as (save_dir, summary_dir):
            step = train(state, train_dataset, settings, params.checkpoint_dir, summary_dir, train_files, starter,
                         save_dir=save_dir)

        eval_dataset = input_pipeline.make_dataset(
            eval_files, t.eval_batch_size, params.max_seq_length, params.max_predictions_per_seq,
            is_training=False, pad_final_batch=True)
        # do_eval scores the float32 model that is exported and that the Evaluator scores, so
        # that the same data give the same figures whatever precision trained it.
        eval_state = state if policy == "float32" else TrainingState(
            export.float32_copy(state.model, bert_config, strategy), state.optimizer, strategy)
        metrics = evaluate(eval_state, eval_dataset, t.max_eval_steps, eval_files)
        scope = ("all of the eval split" if metrics["eval_scope"] == "all" else
                 f"the {metrics['eval_scope']} of the eval split (--max_eval_steps {t.max_eval_steps})")
        logger.info("Eval results on %s (%d examples): %s", scope, metrics["eval_examples"], metrics)
        if not chief:
            logger.info("Not the chief: the chief writes the eval results and exports the model.")
            return metrics
        tf.io.gfile.makedirs(model_run_dir)
        write_eval_results(metrics, os.path.join(model_run_dir, EVAL_RESULTS_FILE))
        with tf.summary.create_file_writer(os.path.join(model_run_dir, "eval")).as_default(
                step=metrics["global_step"]):
            for name in ("masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy",
                         "next_sentence_loss", "loss"):
                tf.summary.scalar(f"eval/{name}", metrics[name])
        export.export_saved_model(state.model, bert_config, params.vocab_file, serving_model_dir,
                                  params.max_seq_length, params.max_predictions_per_seq)
        warm_start.save_trained_state(state, _trained_state(bert_config, params, step, base_steps + step, how,
                                                            base_model), serving_model_dir)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    return metrics


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (GenericExecutor). Hyperparameters come in fn_args.custom_config."""
    params = TrainerParams.from_custom_config(fn_args.custom_config)
    if logging.getLogger("components").level == logging.NOTSET:
        # In a Vertex AI container nobody configured logging: keep the progress lines.
        logging.getLogger("components").setLevel(logging.INFO)
    # train_args/eval_args num_steps are the pipeline's view of num_train_steps/max_eval_steps.
    training = params.training
    if fn_args.train_steps and fn_args.train_steps != training.num_train_steps:
        raise ValueError(f"train_args.num_steps ({fn_args.train_steps}) disagrees with num_train_steps "
                         f"({training.num_train_steps}) in custom_config.")
    pretrain(params, expand_patterns(fn_args.train_files), expand_patterns(fn_args.eval_files),
             fn_args.serving_model_dir, fn_args.model_run_dir, base_model=fn_args.base_model)
