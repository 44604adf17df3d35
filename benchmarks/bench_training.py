#!/usr/bin/env python3
"""Training throughput on this CPU against its measured matmul peak (not a test).

    .venv/bin/python benchmarks/bench_training.py [--quick] [--configs bert_small:fp32:off,...]
                                                  [--steps 2] [--repeats 4] [--budget 90]

Prints one row per configuration (model, dtype, XLA, global batch, median seq/s, achieved
GFLOP/s, model-FLOPs utilisation against the fp32 peak and against the same dtype's peak),
the peaks, the input pipeline's examples/s and its ratio to what the trainer consumes, and
the goals from the issue beside the figures.

What is measured
  Trainer: the project's real step, `run_fn.build_state` + `training_loop.make_train_chunk`
    (one tf.function running N steps in a while_loop on a distributed iterator), at
    max_seq_length 128, max_predictions_per_seq 20, on synthetic batches from an in-memory
    `tf.data` pipeline (`repeat()`, `distribute_datasets_from_function`, default strategy),
    so the input does not limit. The first call (tracing, and XLA compilation) is timed
    separately and excluded; then `--repeats` calls of `--steps` steps each; the median is
    reported. Each configuration runs in its own child process: the Keras policy, the XLA
    setting and the memory of one model do not leak into the next.
    dtype: fp32 = Keras policy "float32"; bf16 = "mixed_bfloat16" (set before build_state,
    restored after).
    XLA on = the trainer's own `LoopSettings(use_xla=True)`: each replica's forward and
    backward pass runs in a `tf.function(jit_compile=True)` inside the chunk's while_loop;
    the all-reduce, clipping and optimizer update stay outside XLA. (Not
    `tf.config.optimizer.set_jit(True)`: on a CPU, auto-clustering compiles nothing unless
    TF_XLA_FLAGS=--tf_xla_cpu_global_jit is set before TensorFlow starts.) The child
    confirms XLA ran by TensorFlow's "Compiled cluster using XLA" log line.
  Peak: GFLOP/s of chained 2048x2048 matmuls in one tf.function, median of several calls,
    float32 and bfloat16, measured before and after the trainer runs (the machine is
    shared); the larger of the two is the peak.
  Model FLOPs per sequence (forward + backward = 3 x forward = 6 x MACs):
      6 * L * (4*H^2 + 2*H*I) * S        encoder weight matrices (Q, K, V, O, FFN in/out)
    + 12 * L * H * S^2                   attention scores and context, fwd+bwd
    + 6 * P * (H^2 + H*V)                MLM transform and output projection, masked positions only
    Convention: weight matrices only; embeddings (lookups), biases, LayerNorm, pooler and the
    NSP head are left out. BERT-base (L12 H768 I3072 V30522) at S=128, P=20 gives 69.93 GFLOP
    per sequence (counting biases and LayerNorm would give 70.02; the pooler adds 0.004).
    MFU = seq/s * FLOPs per sequence / measured peak.
  Input: components/trainer/input_pipeline.make_dataset over ~2000 synthetic examples of
    the create_pretraining_data schema in 4 TFRecord shards (plain and gzip), batches of
    32, training mode (shuffle, repeat), after a warm-up; median over repeats.

--quick: bert_small only, fewer repeats, fewer input batches. --budget caps the timed
calls of one configuration: when the first timed call shows the repeats would not fit,
fewer are run and the row says so (bf16 is emulated on CPUs without AVX512_BF16/AMX).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SEQ_LEN = 128
PREDICTIONS = 20
# preset -> global batch. bert_tiny (L2 H128) is for a smoke run of this script only.
MODELS = {"bert_base": 8, "bert_small": 32, "bert_tiny": 32}
DTYPES = {"fp32": "float32", "bf16": "mixed_bfloat16"}
XLA = ("off", "on")
XLA_COMPILED_LOG = "Compiled cluster using XLA"

# The issue's goals, for comparison.
GOAL_FP32_MFU, GOAL_FP32_SEQS = 0.75, 2.3
GOAL_BF16_MFU, GOAL_BF16_SEQS = 0.63, 3.6
GOAL_INPUT_RATIO = 10.0


# --------------------------------------------------------------------------- FLOPs

def model_flops_per_sequence(config, seq_len: int = SEQ_LEN, predictions: int = PREDICTIONS) -> dict:
    """Training FLOPs of one sequence (see the module docstring for the convention)."""
    L, H, I, V = config.num_hidden_layers, config.hidden_size, config.intermediate_size, config.vocab_size
    parts = {
        "encoder": 6 * L * (4 * H * H + 2 * H * I) * seq_len,
        "attention": 12 * L * H * seq_len ** 2,
        "mlm_head": 6 * predictions * (H * H + H * V),
    }
    parts["total"] = sum(parts.values())
    return parts


def load_config(model: str):
    from components.bert.config import load_preset
    return load_preset(model)


# --------------------------------------------------------------------------- matmul peak

def matmul_peak(dtype_name: str, n: int = 2048, chain: int = 4, repeats: int = 5) -> float:
    """Median GFLOP/s of `chain` chained n x n matmuls in one tf.function."""
    import tensorflow as tf
    dtype = tf.as_dtype(dtype_name)
    a = tf.cast(tf.random.normal([n, n]), dtype)
    # Scaled so the chain neither overflows nor underflows.
    b = tf.cast(tf.random.normal([n, n], stddev=1.0 / n ** 0.5), dtype)

    @tf.function
    def chained(x, w):
        for _ in range(chain):
            x = tf.matmul(x, w)
        return x

    chained(a, b).numpy()  # trace and warm the thread pool
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        chained(a, b).numpy()
        times.append(time.perf_counter() - t)
    return chain * 2 * n ** 3 / statistics.median(times) / 1e9


# --------------------------------------------------------------------------- trainer (child)

def synthetic_dataset(batch_size: int, vocab_size: int, seed: int = 0, distinct: int = 64):
    """In-memory batches with the input pipeline's shapes and dtypes, repeated forever.

    input_ids, input_mask, segment_ids int32 [B, 128]; masked_lm_positions, masked_lm_ids
    int32 [B, 20]; masked_lm_weights float32 [B, 20]; next_sentence_labels int32 [B, 1].
    """
    import numpy as np
    import tensorflow as tf
    rng = np.random.default_rng(seed)
    n = max(distinct, batch_size)
    lengths = rng.integers(SEQ_LEN // 2, SEQ_LEN + 1, n)
    mask = (np.arange(SEQ_LEN)[None, :] < lengths[:, None]).astype(np.int32)
    positions = np.stack([np.sort(rng.choice(np.arange(1, l), PREDICTIONS, replace=False)) for l in lengths])
    features = {
        "input_ids": (rng.integers(1, vocab_size, (n, SEQ_LEN)) * mask).astype(np.int32),
        "input_mask": mask,
        "segment_ids": ((np.arange(SEQ_LEN)[None, :] >= lengths[:, None] // 2) * mask).astype(np.int32),
        "masked_lm_positions": positions.astype(np.int32),
        "masked_lm_ids": rng.integers(1, vocab_size, (n, PREDICTIONS)).astype(np.int32),
        "masked_lm_weights": np.ones((n, PREDICTIONS), np.float32),
        "next_sentence_labels": rng.integers(0, 2, (n, 1)).astype(np.int32),
    }
    return (tf.data.Dataset.from_tensor_slices(features).batch(batch_size, drop_remainder=True)
            .cache().repeat().prefetch(tf.data.AUTOTUNE))


def _params(bert_config, batch_size: int, policy: str, xla: bool, checkpoint_dir: str):
    from components.trainer.params import TrainerParams, TrainingConfig
    precision = {"float32": "float32", "mixed_bfloat16": "bfloat16"}[policy]
    return TrainerParams(bert_config=bert_config.to_dict(),
                         training=TrainingConfig(train_batch_size=batch_size, mixed_precision=precision,
                                                 use_xla=xla),
                         max_seq_length=SEQ_LEN, max_predictions_per_seq=PREDICTIONS,
                         checkpoint_dir=checkpoint_dir)


def run_one(model: str, dtype: str, xla: bool, steps: int, repeats: int, budget: float) -> dict:
    """One configuration in this process; returns its figures (seconds, seq/s)."""
    import tensorflow as tf
    import tf_keras as keras

    batch = MODELS[model]
    bert_config = load_config(model)
    policy = DTYPES[dtype]
    keras.utils.set_random_seed(12345)
    strategy = tf.distribute.get_strategy()
    result = {"model": model, "dtype": dtype, "xla": xla, "batch": batch, "steps": steps}

    # As run_fn.pretrain: the policy is set before build_state and stays set while training.
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        _time_steps(result, bert_config, policy, xla, strategy, steps, repeats, budget)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return result


def _time_steps(result: dict, bert_config, policy: str, xla: bool, strategy, steps: int, repeats: int,
                budget: float) -> None:
    """Builds the state, times the chunks and the overheads, and fills `result` in place."""
    import tensorflow as tf
    from components.trainer import distributed_loss, training_loop
    from components.trainer.run_fn import build_state

    model, dtype, batch = result["model"], result["dtype"], result["batch"]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        state = build_state(bert_config, _params(bert_config, batch, policy, xla, tmp), strategy)
        result["build_s"] = time.perf_counter() - t

    settings = training_loop.LoopSettings(
        num_train_steps=10 ** 9, steps_per_execution=steps, save_checkpoints_steps=10 ** 9,
        keep_checkpoint_max=1, global_batch_size=batch, use_xla=xla)
    dataset = strategy.distribute_datasets_from_function(
        lambda ctx: synthetic_dataset(ctx.get_per_replica_batch_size(batch), bert_config.vocab_size))
    iterator = iter(dataset)
    train_chunk = training_loop.make_train_chunk(state, settings)

    def call(num_steps: int) -> float:
        t = time.perf_counter()
        _, all_finite = train_chunk(iterator, tf.constant(num_steps))
        if not bool(all_finite):  # the trainer's own host sync, once per chunk
            raise RuntimeError(f"{model} {dtype}: non-finite loss in the benchmark")
        return time.perf_counter() - t

    # Warm-up: traces, and with XLA compiles (jit_compile compiles on the first call).
    warm_steps = 1
    result["warmup_s"], result["warmup_steps"] = call(warm_steps), warm_steps

    # Timed calls. When the first shows that `repeats` calls of `steps` steps would overrun
    # the budget, the rest run one step each, as many as fit (at least 2 more: a median of 3).
    cpu0 = os.times()
    times, call_steps = [call(steps)], [steps]
    per_step = times[0] / steps
    if repeats * times[0] > budget and repeats > 1:
        fit = int((budget - times[0]) // per_step)
        more_steps = 1 if steps > 1 else steps
        more = max(2, min(repeats - 1, fit))
    else:
        more_steps, more = steps, repeats - 1
    for _ in range(more):
        times.append(call(more_steps))
        call_steps.append(more_steps)
    cpu1 = os.times()
    wall = sum(times)
    result["cut"] = call_steps != [steps] * repeats
    result["cpu_share"] = ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall / (os.cpu_count() or 1)
    result["call_s"], result["call_steps"] = times, call_steps
    result["step_s_median"] = statistics.median(t / n for t, n in zip(times, call_steps))
    result["seqs_per_s"] = [n * batch / t for t, n in zip(times, call_steps)]
    result["seqs_per_s_median"] = statistics.median(result["seqs_per_s"])
    result["tracing_count"] = train_chunk.experimental_get_tracing_count()

    # Fixed cost of one call: the same function with 0 steps (dispatch, iterator handle, sync).
    result["empty_call_ms"] = statistics.median(call(0) for _ in range(3)) * 1e3
    # What train() does on the host after each chunk, besides the call: read the step,
    # turn the sums into metrics, read the learning rate.
    sums, _ = train_chunk(iterator, tf.constant(0))
    host = []
    for _ in range(3):
        t = time.perf_counter()
        int(state.optimizer.iterations.numpy())
        {k: float(v) for k, v in distributed_loss.metrics_from_sums(sums).items()}
        training_loop._learning_rate(state.optimizer)  # pylint: disable=protected-access
        host.append(time.perf_counter() - t)
    result["host_bookkeeping_ms"] = statistics.median(host) * 1e3

    # The optimizer update alone (AdamW over every variable, incl. the [V, H] embedding):
    # memory-bound work that the model-FLOPs count leaves out.
    variables = state.model.trainable_variables
    zeros = [tf.zeros_like(v) for v in variables]

    @tf.function(autograph=False)
    def apply_only():
        state.optimizer.apply_gradients(zip(zeros, variables), skip_gradients_aggregation=True)

    apply_only()
    apply = []
    for _ in range(3):
        t = time.perf_counter()
        apply_only()
        state.optimizer.iterations.numpy()
        apply.append(time.perf_counter() - t)
    result["optimizer_update_ms"] = statistics.median(apply) * 1e3
    result["params"] = int(sum(v.shape.num_elements() for v in variables))


def _child(args) -> None:
    model, dtype, xla = args.one.split(":")
    result = run_one(model, dtype, xla == "on", args.steps, args.repeats, args.budget)
    print(json.dumps(result), flush=True)


def run_child(argv: list[str], timeout: float) -> tuple[dict | None, bool, str]:
    """Runs this script with `argv` in a child; returns (its JSON, XLA compiled?, stderr tail)."""
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"  # XLA's "Compiled cluster" line is an INFO
    env.setdefault("PYTHONWARNINGS", "ignore")
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__)] + argv, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, False, f"timed out after {timeout:.0f} s\n{(e.stderr or b'')[-2000:]}"
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    compiled = XLA_COMPILED_LOG in proc.stderr
    if proc.returncode or not lines:
        tail = "\n".join(x for x in proc.stderr.splitlines() if not re.search(r"cuda|cuDNN|cuBLAS|cuFFT", x))
        return None, compiled, tail[-3000:]
    return json.loads(lines[-1]), compiled, ""


# --------------------------------------------------------------------------- input pipeline

def write_shards(directory: str, num_examples: int = 2000, num_shards: int = 4, gzip: bool = False,
                 vocab_size: int = 30522, seed: int = 0) -> list[str]:
    """tf.train.Examples of the create_pretraining_data schema (seq 128, 20 predictions)."""
    import numpy as np
    import tensorflow as tf
    from components.pretraining_data.schema import FEATURE_NAMES
    rng = np.random.default_rng(seed)
    options = tf.io.TFRecordOptions(compression_type="GZIP" if gzip else "")
    paths = [os.path.join(directory, f"train-{i:05d}-of-{num_shards:05d}" + (".gz" if gzip else ""))
             for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(p, options) for p in paths]
    for i in range(num_examples):
        length = int(rng.integers(SEQ_LEN // 2, SEQ_LEN + 1))
        ids = [int(x) for x in rng.integers(1, vocab_size, length)] + [0] * (SEQ_LEN - length)
        values = {
            "input_ids": ids,
            "input_mask": [1] * length + [0] * (SEQ_LEN - length),
            "segment_ids": [0] * (length // 2) + [1] * (length - length // 2) + [0] * (SEQ_LEN - length),
            "masked_lm_positions": sorted(int(x) for x in rng.choice(np.arange(1, length), PREDICTIONS,
                                                                     replace=False)),
            "masked_lm_ids": [int(x) for x in rng.integers(1, vocab_size, PREDICTIONS)],
            "masked_lm_weights": [1.0] * PREDICTIONS,
            "next_sentence_labels": [int(rng.integers(0, 2))],
        }
        feature = {}
        for name in FEATURE_NAMES:
            if name == "masked_lm_weights":
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values[name]))
            else:
                feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values[name]))
        writers[i % num_shards].write(tf.train.Example(
            features=tf.train.Features(feature=feature)).SerializeToString())
    for w in writers:
        w.close()
    return paths


def input_examples_per_s(files: list[str], batches: int, repeats: int, batch_size: int = 32) -> float:
    """Median examples/s of make_dataset (training mode) over `repeats` runs of `batches` batches."""
    from components.trainer.input_pipeline import make_dataset
    from input_rate import median_examples_per_s
    return median_examples_per_s(make_dataset(files, batch_size, SEQ_LEN, PREDICTIONS, is_training=True, seed=1),
                                 batch_size, batches, repeats, warmup=20)


# --------------------------------------------------------------------------- throughput mode vs tf-models

# impl -> what it runs. All on the same shipped-corpus records, same rows per step, same policy
# (precision.choose_precision("auto"): bf16 where the CPU has it natively, else fp32).
THROUGHPUT_IMPLS = {
    "tf-models": "tf-models-official BertPretrainerV2 (BertEncoder + MaskedLM + NSP head), padded rows, XLA",
    "faithful": "this Trainer, default recipe: padded rows, no XLA",
    "throughput": "this Trainer, --throughput_mode: packed rows (<= 3 instances), XLA",
}
THROUGHPUT_SHAPES = {128: (20, 8), 512: (80, 2)}  # seq -> (max_predictions_per_seq, rows per step)


def _tf_models_step(bert_config, seq: int, use_xla: bool):
    """(model variables, a chunk function(iterator, n) -> real tokens) for tf-models-official's BERT."""
    import tensorflow as tf
    import tf_keras
    from official.nlp.modeling import layers as tfm_layers
    from official.nlp.modeling import models as tfm_models
    from official.nlp.modeling import networks as tfm_networks
    c = bert_config
    encoder = tfm_networks.BertEncoder(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, num_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads, inner_dim=c.intermediate_size,
        max_sequence_length=c.max_position_embeddings, type_vocab_size=c.type_vocab_size,
        dropout_rate=c.hidden_dropout_prob, attention_dropout_rate=c.attention_probs_dropout_prob)
    model = tfm_models.BertPretrainerV2(encoder, classification_heads=[tfm_layers.ClassificationHead(
        inner_dim=c.hidden_size, num_classes=2, dropout_rate=c.hidden_dropout_prob, name="next_sentence")])
    dummy = {k: tf.zeros([1, seq], tf.int32) for k in ("input_word_ids", "input_mask", "input_type_ids")}
    model(dict(dummy, masked_lm_positions=tf.zeros([1, 1], tf.int32)))  # builds the heads' variables
    optimizer = tf_keras.optimizers.AdamW(1e-4, weight_decay=0.01, jit_compile=use_xla)
    optimizer.build(model.trainable_variables)

    def forward_backward(f):
        inputs = {"input_word_ids": f["input_ids"], "input_mask": f["input_mask"], "input_type_ids": f["segment_ids"],
                  "masked_lm_positions": f["masked_lm_positions"]}
        with tf.GradientTape() as tape:
            out = model(inputs, training=True)
            w = f["masked_lm_weights"]
            mlm = tf.keras.losses.sparse_categorical_crossentropy(f["masked_lm_ids"], tf.cast(out["mlm_logits"], tf.float32),
                                                                  from_logits=True)
            nsp = tf.keras.losses.sparse_categorical_crossentropy(f["next_sentence_labels"][:, 0],
                                                                  tf.cast(out["next_sentence"], tf.float32),
                                                                  from_logits=True)
            loss = tf.reduce_sum(mlm * w) / (tf.reduce_sum(w) + 1e-5) + tf.reduce_mean(nsp)
        return tape.gradient(loss, model.trainable_variables)

    if use_xla:
        forward_backward = tf.function(forward_backward, jit_compile=True, autograph=False)

    @tf.function(autograph=False)
    def chunk(iterator, n):
        def body(i, tokens):
            f = next(iterator)
            grads = forward_backward(f)
            grads, _ = tf.clip_by_global_norm(grads, 1.0)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return i + 1, tokens + tf.reduce_sum(tf.cast(f["input_mask"], tf.float32))
        return tf.while_loop(lambda i, _: i < n, body, (tf.constant(0), tf.constant(0.0)))[1]

    return chunk


def run_throughput_one(impl: str, seq: int, records_dir: str, steps: int, repeats: int, budget: float) -> dict:
    """One implementation at one sequence length, in this process: real tokens/s and instances/s."""
    import tensorflow as tf
    import tf_keras as keras
    from components.trainer import input_pipeline, precision, training_loop
    from components.trainer.run_fn import build_state
    from shipped_records import shipped_records

    preds, rows = THROUGHPUT_SHAPES[seq]
    records = shipped_records(records_dir, seq, preds)
    bert_config = load_config("bert_base")
    policy = precision.choose_precision("auto", "cpu")
    keras.utils.set_random_seed(12345)
    keras.mixed_precision.set_global_policy(policy)
    packed = impl == "throughput"
    dataset = input_pipeline.make_dataset(records["train"], rows, seq, preds, is_training=True, seed=1,
                                          pack_sequences=3 if packed else 0)
    result = {"impl": impl, "seq": seq, "rows": rows, "policy": policy}
    if impl.startswith("tf-models"):
        iterator = iter(dataset.repeat())
        chunk = _tf_models_step(bert_config, seq, use_xla=True)

        def call(n):
            t = time.perf_counter()
            tokens = float(chunk(iterator, tf.constant(n)))
            return time.perf_counter() - t, tokens, n * rows
    else:
        strategy = tf.distribute.get_strategy()
        with tempfile.TemporaryDirectory() as tmp:
            state = build_state(bert_config, _params(bert_config, rows, policy, packed, tmp), strategy)
        settings = training_loop.LoopSettings(
            num_train_steps=10 ** 9, steps_per_execution=steps, save_checkpoints_steps=10 ** 9,
            keep_checkpoint_max=1, global_batch_size=rows, use_xla=packed)
        iterator = iter(strategy.distribute_datasets_from_function(lambda ctx: dataset))
        chunk = training_loop.make_train_chunk(state, settings)

        def call(n):
            t = time.perf_counter()
            sums, _ = chunk(iterator, tf.constant(n))
            return time.perf_counter() - t, float(sums["real_tokens"]), float(sums["examples"])

    t0 = time.perf_counter()
    call(1)
    result["warmup_s"] = time.perf_counter() - t0
    seconds, tokens, instances = [], [], []
    for i in range(repeats):
        s, tok, inst = call(steps)
        seconds.append(s)
        tokens.append(tok)
        instances.append(inst)
        if sum(seconds) > budget and i >= 1:
            break
    result["tokens_per_s"] = statistics.median(t / s for t, s in zip(tokens, seconds))
    result["instances_per_s"] = statistics.median(n / s for n, s in zip(instances, seconds))
    result["tokens_per_row"] = sum(tokens) / (len(tokens) * steps * rows)
    result["calls"] = len(seconds)
    return result


def throughput_report(args) -> None:
    """--throughput: the three implementations side by side at 128 and 512, on the shipped corpus."""
    from shipped_records import padding_fraction, shipped_records
    cache = args.records_dir or tempfile.mkdtemp(prefix="bench-records-")
    pads = {}
    for seq, (preds, _) in THROUGHPUT_SHAPES.items():
        pads[seq] = padding_fraction(shipped_records(cache, seq, preds)["train"], seq)
    print(f"\nThroughput mode vs tf-models-official (BERT-base, shipped corpus records, cache {cache}):")
    for impl, what in THROUGHPUT_IMPLS.items():
        print(f"  {impl:<11} {what}")
    rows = []
    for seq in THROUGHPUT_SHAPES:
        for impl in THROUGHPUT_IMPLS:
            argv = ["--tp-one", f"{impl}:{seq}", "--records_dir", cache, "--steps", str(args.steps),
                    "--repeats", str(args.repeats), "--budget", str(args.budget)]
            if args.tf_models_path:
                argv += ["--tf_models_path", args.tf_models_path]
            result, _, err = run_child(argv, timeout=max(3600, 8 * args.budget))
            if result is None:
                print(f"  {impl} @ {seq}: FAILED\n{err[-1500:]}", flush=True)
                continue
            rows.append(result)
            print(f"  done {impl} @ {seq}: {result['tokens_per_s']:.0f} real tokens/s "
                  f"(warm-up {result['warmup_s']:.0f} s, {result['calls']} calls)", flush=True)
    print(f"\n{'seq':>4} {'padding':>8} {'bound':>6} {'impl':<11} {'rows':>4} {'tok/row':>7} {'tokens/s':>9} "
          f"{'inst/s':>7} {'vs tf-models':>12}  policy")
    for seq in THROUGHPUT_SHAPES:
        base = next((r for r in rows if r["seq"] == seq and r["impl"] == "tf-models"), None)
        for r in (r for r in rows if r["seq"] == seq):
            ratio = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "n/a"
            print(f"{seq:>4} {pads[seq]:>8.1%} {1 / (1 - pads[seq]):>5.2f}x {r['impl']:<11} {r['rows']:>4} "
                  f"{r['tokens_per_row']:>7.1f} {r['tokens_per_s']:>9.0f} {r['instances_per_s']:>7.2f} {ratio:>12}  "
                  f"{r['policy']}")
    print("(tokens/s counts real tokens, input_mask ones, never padding; bound = 1 / (1 - padding), the most "
          "that removing padding alone can give)")
    for seq in THROUGHPUT_SHAPES:
        base = next((r for r in rows if r["seq"] == seq and r["impl"] == "tf-models"), None)
        mine = next((r for r in rows if r["seq"] == seq and r["impl"] == "throughput"), None)
        if base and mine:
            ratio = mine["tokens_per_s"] / base["tokens_per_s"]
            print(f"  goal >= 1.20x tf-models at {seq}: {ratio:.2f}x -> {'MET' if ratio >= 1.2 else 'NOT MET'}")


# --------------------------------------------------------------------------- report

def parse_configs(text: str, quick: bool) -> list[tuple[str, str, str]]:
    """'bert_small', 'bert_base:bf16', 'bert_small:fp32:on' or 'all' (comma-separated)."""
    if text in (None, "", "all"):
        items = ["bert_small"] if quick else ["bert_small", "bert_base"]
    else:
        items = [x.strip() for x in text.split(",") if x.strip()]
    configs = []
    for item in items:
        parts = item.split(":")
        if len(parts) > 3 or parts[0] not in MODELS:
            raise SystemExit(f"--configs: {item!r} is not model[:dtype[:xla]] with model in {list(MODELS)}")
        dtypes = [parts[1]] if len(parts) > 1 else list(DTYPES)
        xlas = [parts[2]] if len(parts) > 2 else list(XLA)
        for d in dtypes:
            if d not in DTYPES:
                raise SystemExit(f"--configs: dtype {d!r} is not one of {list(DTYPES)}")
            for x in xlas:
                if x not in XLA:
                    raise SystemExit(f"--configs: XLA {x!r} is not one of {list(XLA)}")
                if (parts[0], d, x) not in configs:
                    configs.append((parts[0], d, x))
    return configs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="bert_small only, fewer repeats")
    parser.add_argument("--configs", default="all",
                        help="comma-separated model[:fp32|bf16[:off|on]] (default: all; --quick: bert_small)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per timed call (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per configuration (default 4; quick 3)")
    parser.add_argument("--budget", type=float, default=90.0,
                        help="seconds of timed calls per configuration before repeats are cut (min 2 calls)")
    parser.add_argument("--throughput", action="store_true",
                        help="only the throughput-mode comparison: tf-models-official, this Trainer's default "
                             "recipe and its --throughput_mode, BERT-base at 128 and 512 on the shipped corpus")
    parser.add_argument("--tf_models_path", help="a directory holding tf-models-official (and gin-config) when "
                                                 "they are not in the venv, e.g. from pip install --target DIR")
    parser.add_argument("--records_dir", help="cache of the shipped-corpus records (default: a temp dir)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--tp-one", dest="tp_one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tf_models_path:
        sys.path.append(args.tf_models_path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    args.steps = args.steps or 2
    args.repeats = args.repeats or (3 if args.quick else 4)
    if args.steps < 1 or args.repeats < 1:
        raise SystemExit("--steps and --repeats must be positive")
    if args.one:
        _child(args)
        return 0
    if args.tp_one:
        impl, seq = args.tp_one.split(":")
        print(json.dumps(run_throughput_one(impl, int(seq), args.records_dir, args.steps, args.repeats,
                                            args.budget)), flush=True)
        return 0
    if args.throughput:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        warnings.filterwarnings("ignore", category=FutureWarning)
        throughput_report(args)
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)  # google.api_core's Python 3.10 notice
    configs = parse_configs(args.configs, args.quick)
    started = time.time()

    import tensorflow as tf
    print(f"bench_training: TF {tf.__version__}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start; S={SEQ_LEN}, P={PREDICTIONS}; steps/call {args.steps}, "
          f"repeats {args.repeats}, budget {args.budget:.0f} s/config", flush=True)

    # FLOPs per sequence.
    print("\nModel FLOPs per sequence (fwd+bwd), weight matrices only, embeddings/biases/LayerNorm/pooler/NSP out:")
    print("  6*L*(4H^2+2HI)*S + 12*L*H*S^2 + 6*P*(H^2+H*V)")
    flops = {}
    for model in sorted({c[0] for c in configs} | {"bert_base"}):
        cfg = load_config(model)
        f = model_flops_per_sequence(cfg)
        flops[model] = f["total"]
        print(f"  {model:<10} L{cfg.num_hidden_layers} H{cfg.hidden_size} A{cfg.num_attention_heads} "
              f"I{cfg.intermediate_size} V{cfg.vocab_size}: {f['total'] / 1e9:.2f} GFLOP "
              f"(encoder {f['encoder'] / 1e9:.2f} + attention {f['attention'] / 1e9:.2f} "
              f"+ MLM head {f['mlm_head'] / 1e9:.2f})")
    if abs(flops["bert_base"] / 1e9 - 69.9) > 0.5:
        print(f"  WARNING: BERT-base gives {flops['bert_base'] / 1e9:.2f} GFLOP, not ~69.9")

    # Peaks, before.
    peak_runs = {"float32": [], "bfloat16": []}
    peak_repeats = 3 if args.quick else 5
    for d in peak_runs:
        peak_runs[d].append(matmul_peak(d, repeats=peak_repeats))
    print(f"\nmatmul peak before: fp32 {peak_runs['float32'][0]:.1f} GFLOP/s, "
          f"bf16 {peak_runs['bfloat16'][0]:.1f} GFLOP/s", flush=True)

    # Trainer configurations.
    rows = []
    for model, dtype, xla in configs:
        t = time.time()
        child_args = ["--one", f"{model}:{dtype}:{xla}", "--steps", str(args.steps),
                      "--repeats", str(args.repeats), "--budget", str(args.budget)]
        result, compiled, err = run_child(child_args, timeout=max(1800, 6 * args.budget))
        if result is None:
            print(f"  {model} {dtype} XLA {xla}: FAILED\n{err}", flush=True)
            continue
        result["xla_compiled"] = compiled
        result["wall_s"] = time.time() - t
        rows.append(result)
        print(f"  done {model} {dtype} XLA {xla}: {result['seqs_per_s_median']:.2f} seq/s "
              f"(calls {', '.join(f'{x:.1f}' for x in result['call_s'])} s; warm-up {result['warmup_s']:.0f} s; "
              f"config wall {result['wall_s']:.0f} s)", flush=True)

    # Peaks, after.
    for d in peak_runs:
        peak_runs[d].append(matmul_peak(d, repeats=peak_repeats))
    peak = {d: max(v) for d, v in peak_runs.items()}
    peak_of = {"fp32": peak["float32"], "bf16": peak["bfloat16"]}

    # Input pipeline.
    input_rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for gz in (False, True):
            sub = os.path.join(tmp, "gzip" if gz else "plain")
            os.makedirs(sub)
            files = write_shards(sub, gzip=gz)
            input_rates["gzip" if gz else "plain"] = input_examples_per_s(
                files, batches=50 if args.quick else 100, repeats=3 if args.quick else 5)

    # Report.
    print(f"\n=== Results ({time.time() - started:.0f} s, load average {os.getloadavg()[0]:.1f} at end) ===")
    print(f"matmul peak (2048^3 chained x4, median; before / after, max used): "
          f"fp32 {peak_runs['float32'][0]:.1f} / {peak_runs['float32'][1]:.1f} -> {peak['float32']:.1f} GFLOP/s; "
          f"bf16 {peak_runs['bfloat16'][0]:.1f} / {peak_runs['bfloat16'][1]:.1f} -> {peak['bfloat16']:.1f} GFLOP/s")
    print("XLA 'on' = LoopSettings(use_xla=True): forward+backward in tf.function(jit_compile=True) per replica")
    header = (f"{'model':<10} {'dtype':<5} {'XLA':<4} {'batch':>5} {'seq/s':>7} {'GFLOP/s':>8} "
              f"{'MFU/fp32pk':>10} {'MFU/samepk':>10} {'calls':>5} {'warmup s':>8} {'cpu':>5}  notes")
    print(header)
    print("-" * len(header))
    for r in rows:
        achieved = r["seqs_per_s_median"] * flops[r["model"]] / 1e9
        notes = []
        if r["xla"]:
            notes.append("XLA clusters compiled" if r["xla_compiled"] else "XLA compiled NOTHING")
        if r["cut"]:
            notes.append(f"cut to budget {args.budget:.0f} s: calls of {'+'.join(map(str, r['call_steps']))} "
                         f"steps instead of {args.repeats}x{args.steps}")
        if r["tracing_count"] != 1:
            notes.append(f"traced {r['tracing_count']}x")
        print(f"{r['model']:<10} {r['dtype']:<5} {'on' if r['xla'] else 'off':<4} {r['batch']:>5} "
              f"{r['seqs_per_s_median']:>7.2f} {achieved:>8.1f} {achieved / peak['float32']:>10.1%} "
              f"{achieved / peak_of[r['dtype']]:>10.1%} {len(r['call_s']):>5} "
              f"{r['warmup_s']:>8.0f} {r['cpu_share']:>5.0%}  {'; '.join(notes)}")
    print("(cpu = this process's CPU time / (wall x CPUs) during the timed calls: below ~95% means "
          "the step left cores idle or another process took them)")

    print("\nStep overheads (per configuration):")
    print(f"{'model':<10} {'dtype':<5} {'XLA':<4} {'step ms':>8} {'empty call ms':>13} {'host ms':>8} "
          f"{'optimizer ms':>12} {'opt share':>9} {'params':>12}")
    for r in rows:
        step_ms = r["step_s_median"] * 1e3
        print(f"{r['model']:<10} {r['dtype']:<5} {'on' if r['xla'] else 'off':<4} {step_ms:>8.0f} "
              f"{r['empty_call_ms']:>13.1f} {r['host_bookkeeping_ms']:>8.1f} {r['optimizer_update_ms']:>12.0f} "
              f"{r['optimizer_update_ms'] / step_ms:>9.1%} {r['params']:>12,}")
    print("(empty call = make_train_chunk with 0 steps: the fixed cost per chunk; host = train()'s per-chunk "
          "bookkeeping outside the call; optimizer = AdamW apply_gradients alone, not in the model FLOPs)")

    small = [r for r in rows if r["model"] == "bert_small"]
    consumer = max(small or rows, key=lambda r: r["seqs_per_s_median"]) if rows else None
    print("\nInput pipeline (make_dataset, 2000 examples in 4 shards, batch 32, training mode):")
    for kind, rate in input_rates.items():
        ratio = f"{rate / consumer['seqs_per_s_median']:.0f}x" if consumer else "n/a"
        what = (f"the trainer's best {consumer['model']} ({consumer['dtype']}, XLA "
                f"{'on' if consumer['xla'] else 'off'}, {consumer['seqs_per_s_median']:.2f} seq/s)"
                if consumer else "the trainer")
        print(f"  {kind:<5}: {rate:,.0f} examples/s = {ratio} {what}")
    print("  (measured alone; in training the pipeline shares the same cores with the step)")

    print("\nGoals from the issue vs measured:")
    base = {d: max((r for r in rows if r["model"] == "bert_base" and r["dtype"] == d),
                   key=lambda r: r["seqs_per_s_median"], default=None) for d in DTYPES}
    for d, mfu_goal, seqs_goal in (("fp32", GOAL_FP32_MFU, GOAL_FP32_SEQS), ("bf16", GOAL_BF16_MFU, GOAL_BF16_SEQS)):
        implied = seqs_goal * flops["bert_base"] / mfu_goal / 1e9
        line = (f"  BERT-base {d}: goal >= {mfu_goal:.0%} of the {d} peak (~{seqs_goal} seq/s; implies a peak "
                f"of ~{implied:.0f} GFLOP/s, measured {peak_of[d]:.0f})")
        r = base[d]
        if r is None:
            print(line + ": not measured")
            continue
        mfu = r["seqs_per_s_median"] * flops["bert_base"] / 1e9 / peak_of[d]
        print(line + f": best {r['seqs_per_s_median']:.2f} seq/s (XLA {'on' if r['xla'] else 'off'}), "
              f"{mfu:.1%} of the peak -> {'MET' if mfu >= mfu_goal else 'NOT MET'}")
    if consumer and input_rates:
        worst = min(input_rates.values()) / consumer["seqs_per_s_median"]
        print(f"  input >= {GOAL_INPUT_RATIO:.0f}x the trainer: {worst:.0f}x (slower of plain/gzip) -> "
              f"{'MET' if worst >= GOAL_INPUT_RATIO else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
