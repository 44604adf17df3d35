"""The pretraining loop: do_train then do_eval, as run_pretraining.py, in TF2.

One compiled call runs `steps_per_execution` steps (the original's iterations_per_loop)
so a TPU is not starved by Python round trips. Checkpoints go through
`tf.train.CheckpointManager`: TF writes each checkpoint under a temporary name and only
then points the `checkpoint` state file at it (an atomic rename), so a kill mid-save
leaves the previous checkpoint as the latest; a rerun restores step, weights, optimizer
slots and, off TPU, the input iterator's position.

Under MultiWorkerMirroredStrategy every worker runs this loop and every worker must call
save (saving is collective), but only the chief's checkpoints are the run's: the others
save into a scratch directory their caller deletes, and all of them resume from the
chief's. A worker that dies makes the others' next collective fail (after the strategy's
timeout at most), and the loop says so in one line instead of a gRPC status dump.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Optional, Sequence

import logging
import tensorflow as tf

from components.trainer import distributed_loss
from components.trainer.packing import NEXT_SENTENCE_WEIGHTS
from components.trainer.progress import ProgressMeter
from components.trainer.data_checks import corrupt_shard_error, is_record_read_error

logger = logging.getLogger(__name__)

SUM = tf.distribute.ReduceOp.SUM
TERM_NAMES = ("mlm_nll_sum", "mlm_correct_sum", "mlm_weight_sum", "nsp_nll_sum", "nsp_correct_sum", "examples")
# Training also counts the real tokens it trained on (input_mask ones, never padding), for tokens/s.
TRAIN_TERM_NAMES = TERM_NAMES + ("real_tokens",)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint is left as the latest."""


class WorkerLostError(RuntimeError):
    """Another worker of a multi-worker run stopped answering; the run fails rather than waits."""


# What a collective raises when a peer is gone: unreachable, timed out, or aborted by TF's
# coordination service after the peer's heartbeats stopped.
_PEER_FAILURES = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
                  tf.errors.CancelledError)


def _peer_failure_reason(error: tf.errors.OpError) -> str:
    """The line of a collective's error that says what happened to the peer (TF's first line is
    a generic "Graph execution error:")."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if any(word in line.lower() for word in ("aborted by", "heartbeat", "timed out", "timeout", "connect")):
            return line[:300]
    return (lines[0] if lines else "no message")[:300]


def _is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and \
        strategy.extended._in_multi_worker_mode()  # pylint: disable=protected-access


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    """How long to train and how often to checkpoint and report."""

    num_train_steps: int
    steps_per_execution: int
    save_checkpoints_steps: int
    keep_checkpoint_max: int
    global_batch_size: int
    clip_norm: float = 1.0
    use_xla: bool = False  # XLA-compile each replica's forward and backward pass
    checkpoint_input: bool = True  # save the input iterator's position where the strategy allows
    # Progress reports (progress.py): the phase's name, how often to report (seconds; 0 =
    # after every chunk), and for the run's ETA the steps of later phases and their cost
    # per step relative to this phase's.
    phase: str = "phase1"
    progress_interval_seconds: float = 60.0
    later_phase_steps: int = 0
    later_step_cost: float = 1.0


@dataclasses.dataclass
class TrainingState:
    """The objects a run trains and checkpoints, created under the strategy's scope."""

    model: tf.keras.Model
    optimizer: object
    strategy: tf.distribute.Strategy


def _zero_sums(names: Sequence[str] = TERM_NAMES) -> dict:
    return {name: tf.constant(0.0) for name in names}


def make_train_chunk(state: TrainingState, settings: LoopSettings) -> Callable:
    """A tf.function running `num_steps` training steps on `iterator`.

    Returns (sums over the steps and replicas of the loss terms and of real_tokens, the
    input_mask ones trained on; all_finite bool scalar).
    """
    model, optimizer, strategy = state.model, state.optimizer, state.strategy
    global_batch = tf.constant(float(settings.global_batch_size))
    loss_scaled = hasattr(optimizer, "get_scaled_loss")

    def forward_backward(features: dict, global_weight_sum: tf.Tensor, global_examples: tf.Tensor):
        """This replica's loss terms and gradients: pure computation, so XLA can compile it."""
        with tf.GradientTape() as tape:
            outputs = model(features, training=True)
            terms = distributed_loss.replica_loss_terms(outputs, features)
            loss = distributed_loss.replica_loss(terms, global_weight_sum, global_examples)
            if loss_scaled:
                loss = optimizer.get_scaled_loss(loss)
        grads = tape.gradient(loss, model.trainable_variables)
        if loss_scaled:
            grads = optimizer.get_unscaled_gradients(grads)
        return terms, grads

    if settings.use_xla:
        forward_backward = tf.function(forward_backward, jit_compile=True, autograph=False)

    def step_fn(features: dict) -> dict:
        replica = tf.distribute.get_replica_context()
        # The global masked-LM weight sum comes from the labels alone, before the forward pass.
        global_weight_sum = replica.all_reduce(
            SUM, tf.reduce_sum(tf.cast(features["masked_lm_weights"], tf.float32)))
        # NSP averages over the global batch's examples: its size, or with packed rows
        # (throughput mode) the instances they hold.
        global_examples = (replica.all_reduce(SUM, tf.reduce_sum(features[NEXT_SENTENCE_WEIGHTS]))
                           if NEXT_SENTENCE_WEIGHTS in features else global_batch)
        terms, grads = forward_backward(features, global_weight_sum, global_examples)
        # Sum across replicas first, then clip: the whole batch's gradient is clipped, so N
        # replicas take the same step as one device on the global batch.
        grads = replica.all_reduce(SUM, grads)
        grads, _ = tf.clip_by_global_norm(grads, settings.clip_norm)
        optimizer.apply_gradients(zip(grads, model.trainable_variables), skip_gradients_aggregation=True)
        return dict(terms, real_tokens=tf.reduce_sum(tf.cast(features["input_mask"] > 0, tf.float32)))

    # autograph=False: nothing here needs it (the loop is an explicit while_loop), and with
    # it off Keras does not convert every layer's Python code, which made tracing take minutes.
    @tf.function(autograph=False)
    def train_chunk(iterator, num_steps: tf.Tensor):
        def body(i, all_finite, sums):
            terms = strategy.run(step_fn, args=(next(iterator),))
            reduced = {k: strategy.reduce(SUM, terms[k], axis=None) for k in TRAIN_TERM_NAMES}
            finite = tf.math.is_finite(reduced["mlm_nll_sum"] + reduced["nsp_nll_sum"])
            return i + 1, tf.logical_and(all_finite, finite), {k: sums[k] + reduced[k] for k in TRAIN_TERM_NAMES}

        _, all_finite, sums = tf.while_loop(lambda i, *_: i < num_steps, body,
                                            (tf.constant(0), tf.constant(True), _zero_sums(TRAIN_TERM_NAMES)))
        return sums, all_finite

    return train_chunk


def make_eval_step(state: TrainingState) -> Callable:
    model, strategy = state.model, state.strategy

    @tf.function(autograph=False)
    def eval_step(features_iterator_batch):
        def replica_fn(features):
            return distributed_loss.replica_loss_terms(model(features, training=False), features)
        terms = strategy.run(replica_fn, args=(features_iterator_batch,))
        return {k: strategy.reduce(SUM, terms[k], axis=None) for k in TERM_NAMES}

    return eval_step


def _learning_rate(optimizer) -> float:
    lr = optimizer.learning_rate
    if callable(lr):
        lr = lr(optimizer.iterations)
    return float(tf.convert_to_tensor(lr))


def _restore(trackables: dict, path: str) -> None:
    """Restores everything; if the input no longer matches the saved position (other
    shards, say), restores model and optimizer only and restarts the data order."""
    try:
        tf.train.Checkpoint(**trackables).restore(path).assert_existing_objects_matched()
    except (tf.errors.FailedPreconditionError, tf.errors.InvalidArgumentError) as e:
        if "input" not in trackables:
            raise
        logger.warning("The input changed since %s (%s); resuming weights and optimizer, "
                        "restarting the data order.", path, str(e).splitlines()[0][:200])
        weights_only = {k: v for k, v in trackables.items() if k != "input"}
        tf.train.Checkpoint(**weights_only).restore(path).expect_partial().assert_existing_objects_matched()


def remove_interrupted_saves(checkpoint_dir: str) -> list[str]:
    """Removes `ckpt-N_temp/` directories: a save killed before TF merged and renamed it.

    TF writes a checkpoint's shards under `<prefix>_temp/` and only then merges them into
    `<prefix>.index/.data` and repoints the `checkpoint` file, so these directories are
    never read; left alone they keep a whole model's worth of bytes each.
    """
    removed = []
    for path in tf.io.gfile.glob(f"{checkpoint_dir.rstrip('/')}/ckpt-*_temp"):
        tf.io.gfile.rmtree(path)
        logger.warning("Removed %s, a checkpoint save that was interrupted.", path)
        removed.append(path)
    return removed


def train(
    state: TrainingState,
    dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset],
    settings: LoopSettings,
    checkpoint_dir: str,
    summary_dir: Optional[str],
    train_files: Sequence[str] = (),
    warm_start: Optional[Callable[[tf.keras.Model], None]] = None,
    save_dir: Optional[str] = None,
) -> int:
    """Trains to `settings.num_train_steps`, resuming from `checkpoint_dir` if it holds a checkpoint.

    Args:
      state: model, optimizer and strategy (variables already built).
      dataset_fn: builds the per-input-pipeline training dataset (see input_pipeline.make_dataset).
      settings: steps, checkpointing and batch size.
      checkpoint_dir: stable directory of the run's checkpoints.
      summary_dir: TensorBoard directory, or None.
      train_files: the shards, to name a corrupt one if reading fails.
      warm_start: loads init_checkpoint weights when no checkpoint of this run exists.
      save_dir: where this process writes checkpoints (default `checkpoint_dir`); a
        non-chief worker passes a scratch directory.

    Returns:
      The global step reached.

    Raises:
      NonFiniteLossError: the loss became NaN/Inf (no checkpoint of it is written).
      DataError: a shard is corrupt (named).
      WorkerLostError: in a multi-worker run, another worker stopped answering.
    """
    strategy, optimizer = state.strategy, state.optimizer
    dataset = strategy.distribute_datasets_from_function(dataset_fn)
    iterator = iter(dataset)
    trackables = {"model": state.model, "optimizer": optimizer}
    if settings.checkpoint_input and isinstance(iterator, tf.__internal__.tracking.Trackable):
        trackables["input"] = iterator
    else:
        # Multi-replica distributed iterators cannot be saved: a resumed run restarts the
        # data order (as TPUEstimator does), with step, weights and optimizer restored.
        logger.info("The input position is not checkpointed on this strategy.")
    checkpoint = tf.train.Checkpoint(**trackables)
    if save_dir is None or save_dir == checkpoint_dir:
        remove_interrupted_saves(checkpoint_dir)  # the writer's job; other workers only read it
    manager = tf.train.CheckpointManager(checkpoint, save_dir or checkpoint_dir,
                                         max_to_keep=settings.keep_checkpoint_max)
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest:
        _restore(trackables, latest)
        logger.info("Resumed from %s at step %d.", latest, int(optimizer.iterations.numpy()))
    elif warm_start is not None:
        warm_start(state.model)

    train_chunk = make_train_chunk(state, settings)
    writer = tf.summary.create_file_writer(summary_dir) if summary_dir else None
    step = int(optimizer.iterations.numpy())
    meter = ProgressMeter(settings.phase, settings.num_train_steps, settings.progress_interval_seconds,
                          time.monotonic(), settings.later_phase_steps, settings.later_step_cost)
    if writer is not None:
        with writer.as_default(step=step):
            tf.summary.text("train/phase", settings.phase)
    while step < settings.num_train_steps:
        next_save = (step // settings.save_checkpoints_steps + 1) * settings.save_checkpoints_steps
        num_steps = meter.chunk_steps(
            min(settings.steps_per_execution, next_save - step, settings.num_train_steps - step))
        started = time.perf_counter()
        try:
            sums, all_finite = train_chunk(iterator, tf.constant(num_steps))
        except _PEER_FAILURES as e:
            if _is_multi_worker(strategy):
                raise WorkerLostError(
                    f"Another training worker stopped answering between steps {step} and {step + num_steps} "
                    f"({type(e).__name__}: {_peer_failure_reason(e)}); the run stops. Rerunning resumes "
                    f"from the chief's last checkpoint in {checkpoint_dir}.") from e
            raise
        except tf.errors.OpError as e:
            if is_record_read_error(e):
                raise corrupt_shard_error(train_files, e) from e
            raise
        seconds = time.perf_counter() - started
        if not bool(all_finite):
            raise NonFiniteLossError(
                f"The training loss became NaN or Inf between steps {step} and {step + num_steps}; "
                f"stopped without saving. The last good checkpoint is {tf.train.latest_checkpoint(checkpoint_dir)} "
                f"(lower --learning_rate or check the data).")
        step = int(optimizer.iterations.numpy())
        metrics = {k: float(v) for k, v in distributed_loss.metrics_from_sums(sums).items()}
        lr = _learning_rate(optimizer)
        steps_per_sec = num_steps / seconds
        # Real examples (packed rows hold several; padding rows none), not batch rows.
        examples_per_sec = float(sums["examples"]) / seconds
        tokens_per_sec = float(sums["real_tokens"]) / seconds
        logger.info(
            "step %d/%d  loss %.4f  mlm_loss %.4f  mlm_acc %.4f  nsp_loss %.4f  nsp_acc %.4f  lr %.3g  "
            "%.2f steps/s  %.1f examples/s  %.0f tokens/s", step, settings.num_train_steps, metrics["loss"],
            metrics["masked_lm_loss"], metrics["masked_lm_accuracy"], metrics["next_sentence_loss"],
            metrics["next_sentence_accuracy"], lr, steps_per_sec, examples_per_sec, tokens_per_sec)
        report = meter.update(step, num_steps, float(sums["examples"]),
                              float(sums["real_tokens"]), seconds, time.monotonic())
        if report is not None:
            logger.info("%s", report.line())
        if writer is not None:
            with writer.as_default(step=step):
                for name, value in metrics.items():
                    tf.summary.scalar(f"train/{name}", value)
                tf.summary.scalar("train/learning_rate", lr)
                tf.summary.scalar("train/steps_per_sec", steps_per_sec)
                tf.summary.scalar("train/examples_per_sec", examples_per_sec)
                tf.summary.scalar("train/tokens_per_sec", tokens_per_sec)
                if report is not None:
                    for name in ("eta_phase_seconds", "eta_run_seconds"):
                        tf.summary.scalar(f"train/{name}", report.scalars()[name])
        if step % settings.save_checkpoints_steps == 0 or step >= settings.num_train_steps:
            path = manager.save(checkpoint_number=step)
            logger.info("Saved checkpoint %s", path)
    if writer is not None:
        writer.flush()
    return step


def evaluate(state: TrainingState, dataset: tf.data.Dataset, max_eval_steps: int,
             eval_files: Sequence[str] = ()) -> dict:
    """do_eval: the original's metrics over at most `max_eval_steps` batches of `dataset`.

    `dataset` is the eval split in fixed-shape batches, its last one padded with examples
    of weight 0 (input_pipeline.make_dataset(pad_final_batch=True)), so that with enough
    steps every example is scored once and the figures equal the Evaluator's on the split.

    Returns:
      masked_lm_accuracy, masked_lm_loss, next_sentence_accuracy, next_sentence_loss, loss
      (floats); global_step; eval_examples (real examples scored, padding excluded); and
      eval_scope, which data the figures are from: "all" (the whole split) or
      "first N batches" (--max_eval_steps stopped before the end).

    Raises:
      ValueError: the eval split is empty.
    """
    eval_step = make_eval_step(state)
    sums = _zero_sums()
    batches = 0
    # One batch more than asked for is read (not scored) to tell "the split ended" from
    # "--max_eval_steps cut it short".
    # Several workers: each reads the whole eval split and keeps its part of every batch (DATA
    # sharding), so they evaluate the same examples one process would; sharding by file
    # would fail on an eval split with fewer files than workers.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    distributed = state.strategy.experimental_distribute_dataset(
        dataset.take(max_eval_steps + 1).with_options(options))
    cut_short = False
    try:
        for batch in distributed:
            if batches == max_eval_steps:
                cut_short = True
                break
            reduced = eval_step(batch)
            sums = {k: sums[k] + reduced[k] for k in TERM_NAMES}
            batches += 1
    except tf.errors.OpError as e:
        if is_record_read_error(e):
            raise corrupt_shard_error(eval_files, e) from e
        raise
    if batches == 0:
        raise ValueError("The eval split gave no batch: it has no examples. Add eval data "
                         "(--eval_fraction, or records under eval/).")
    metrics = {k: float(v) for k, v in distributed_loss.metrics_from_sums(sums).items()}
    metrics["global_step"] = int(state.optimizer.iterations.numpy())
    metrics["eval_examples"] = int(round(float(sums["examples"])))
    if not all(math.isfinite(v) for v in metrics.values()):
        raise NonFiniteLossError(f"Evaluation produced non-finite metrics: {metrics}")
    metrics["eval_scope"] = f"first {batches} batches" if cut_short else "all"
    return metrics


def write_eval_results(metrics: dict, path: str) -> None:
    """eval_results.txt as run_pretraining.py writes it: `key = value` lines, sorted; temp then rename."""
    text = "".join(f"{key} = {metrics[key]}\n" for key in sorted(metrics))
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)
