"""tf.data input for pretraining: TFRecord shards -> fixed-shape int32 batches.

The pipeline follows run_pretraining.py's `input_fn_builder`, made faster: shards are
read in parallel (interleave), records are batched first and parsed with one vectorised
`parse_example` per batch, int64 features are cast to int32 (TPUs have no int64 and the
model gathers with int32), and every batch has the same shape (TPUs need static shapes;
it also keeps XLA from recompiling on the last batch): training drops the remainder, as
the original does, while evaluation pads its last batch with examples of weight 0 so
that every eval example is scored once (see EXAMPLE_WEIGHT).

With several input pipelines (one per worker under MultiWorkerMirroredStrategy, one per
host on a TPU pod) every pipeline reads the same seeded stream of records and keeps its
replicas' slice of each global batch, rather than a subset of the shard files. A global
batch is then the same examples whatever the number of workers, so a run on N workers
takes the same steps as one process on the same global batch (tested), and a worker
count that does not divide the number of shards loses nothing. The price: each worker
reads every record and drops the others' unparsed, which costs little beside a step of
BERT (the pipeline reads ~30,000 examples/s on one core).

With dynamic masking (records without masked_lm_* features, see dynamic_masking.py) each
record travels with its key (epoch, file index, record index in the file) and is masked
as it is parsed, one example at a time, before batching. Throughput mode packs several
instances per row after parsing (packing.py).
"""
from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from components.pretraining_data.schema import feature_spec, unmasked_feature_spec
from components.trainer import packing as packing_lib
from components.trainer.dynamic_masking import MaskingRule, mask_example

# float32 [B]: 1 for a real example, 0 for padding that fills the last eval batch to the
# fixed batch shape. The loss terms (distributed_loss.replica_loss_terms) weight NSP by it
# and MLM by it times masked_lm_weights, so padding counts for nothing.
EXAMPLE_WEIGHT = "example_weight"


def pad_batch(features: dict[str, tf.Tensor], batch_size: int) -> dict[str, tf.Tensor]:
    """Pads a batch of n <= batch_size examples with zeros to batch_size rows, and adds
    EXAMPLE_WEIGHT (n ones, then zeros).

    Args:
      features: tensors [n, ...] (n may be unknown statically).
      batch_size: the fixed batch size B.

    Returns:
      The same keys, each [B, ...] with a static B, plus example_weight float32 [B]. Padded
      rows are all zeros: input_mask 0 and masked_lm_weights 0.
    """
    n = tf.shape(next(iter(features.values())))[0]
    padded = {}
    for name, t in features.items():
        rows = tf.pad(t, [[0, batch_size - n]] + [[0, 0]] * (t.shape.rank - 1))
        padded[name] = tf.ensure_shape(rows, [batch_size] + t.shape[1:].as_list())
    weights = tf.concat([tf.ones([n], tf.float32), tf.zeros([batch_size - n], tf.float32)], 0)
    padded[EXAMPLE_WEIGHT] = tf.ensure_shape(weights, [batch_size])
    return padded


def compression_of(path: str) -> str:
    """ImportExampleGen writes gzip shards (`*.gz`); create_pretraining_data writes plain ones."""
    return "GZIP" if path.endswith(".gz") else ""


def make_dataset(
    files: Sequence[str],
    batch_size: int,
    max_seq_length: int,
    max_predictions_per_seq: int,
    is_training: bool,
    seed: Optional[int] = None,
    input_context: Optional[tf.distribute.InputContext] = None,
    pad_final_batch: bool = False,
    dynamic_masking: Optional[MaskingRule] = None,
    pack_sequences: int = 0,
) -> tf.data.Dataset:
    """Batches of the google-research/bert features.

    Args:
      files: TFRecord shard paths (plain or gzip, judged by the `.gz` suffix).
      batch_size: examples per batch, for one input pipeline (per replica under a strategy).
      max_seq_length, max_predictions_per_seq: the records' fixed feature lengths.
      is_training: repeat forever and shuffle; otherwise one deterministic pass.
      seed: shuffle seed, for reproducible runs.
      input_context: set by `distribute_datasets_from_function`; each input pipeline then
        keeps its replicas' part of every global batch (see the module docstring).
      pad_final_batch: (evaluation) keep the last, partial batch, padded to batch_size with
        zero-weight examples, and add EXAMPLE_WEIGHT to every batch; otherwise the remainder
        is dropped.
      dynamic_masking: the records are unmasked; mask each as it is read with this rule,
        keyed by (seed, epoch, file, record) (see dynamic_masking.py).
      pack_sequences: K > 0 packs up to K instances per row (throughput mode, packing.py):
        batch_size then counts rows, and the batches have packing.py's features.

    Returns:
      A dataset of dicts: input_ids, input_mask, segment_ids int32 [B, max_seq_length];
      masked_lm_positions, masked_lm_ids int32 [B, max_predictions_per_seq];
      masked_lm_weights float32 [B, max_predictions_per_seq]; next_sentence_labels int32 [B, 1];
      with pad_final_batch, example_weight float32 [B].
    """
    files = sorted(files)
    if not files:
        raise ValueError("No TFRecord files to read: the split is empty.")
    if dynamic_masking is not None or pack_sequences:
        if pack_sequences and pad_final_batch:
            raise ValueError("Packed rows are for training; evaluation reads instances one per row.")
        return _per_example_dataset(files, batch_size, max_seq_length, max_predictions_per_seq, is_training,
                                    seed, input_context, pad_final_batch, dynamic_masking, pack_sequences)
    compression = compression_of(files[0])
    spec = feature_spec(max_seq_length, max_predictions_per_seq)

    file_ds = tf.data.Dataset.from_tensor_slices(files)
    if is_training:
        file_ds = file_ds.shuffle(len(files), seed=seed).repeat()
    records = file_ds.interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type=compression),
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        # Training order need not be reproducible across thread timings only when unseeded.
        deterministic=seed is not None or not is_training,
    )
    if is_training:
        records = records.shuffle(buffer_size=max(100, 10 * batch_size), seed=seed)
    if input_context is not None and input_context.num_input_pipelines > 1:
        records = pipeline_share(records, batch_size, input_context)

    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        parsed = tf.io.parse_example(serialized, spec)
        return {name: tf.cast(t, tf.int32) if t.dtype == tf.int64 else t for name, t in parsed.items()}

    if pad_final_batch:
        batches = records.batch(batch_size).map(
            lambda serialized: pad_batch(parse(serialized), batch_size), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        batches = records.batch(batch_size, drop_remainder=True).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def _per_example_dataset(files: list[str], batch_size: int, max_seq_length: int,
                         max_predictions_per_seq: int, is_training: bool, seed: Optional[int],
                         input_context: Optional[tf.distribute.InputContext], pad_final_batch: bool,
                         rule: Optional[MaskingRule], packing: Optional[int]) -> tf.data.Dataset:
    """make_dataset parsing one record at a time: for dynamic masking (each record keyed and
    masked as it is parsed) and for packing (rows of several instances, packing.py). The file
    and record order are the static path's (the same seeded shuffles)."""
    compression = compression_of(files[0])
    num_files = len(files)
    file_ds = tf.data.Dataset.from_tensor_slices((files, tf.range(num_files, dtype=tf.int64)))
    if is_training:
        file_ds = file_ds.shuffle(num_files, seed=seed).repeat()
    # The n-th file read is of epoch n // num_files (every epoch reads every file once).
    file_ds = file_ds.enumerate()

    def read(n, path_and_index):
        path, file_index = path_and_index
        epoch = n // num_files
        return tf.data.TFRecordDataset(path, compression_type=compression).enumerate().map(
            lambda r, record: (record, tf.stack([epoch, file_index, r])))

    records = file_ds.interleave(read, cycle_length=min(num_files, 8), num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=seed is not None or not is_training)
    if is_training:
        records = records.shuffle(buffer_size=max(100, 10 * batch_size), seed=seed)
    sharded = input_context is not None and input_context.num_input_pipelines > 1
    if sharded and not packing:
        records = pipeline_share(records, batch_size, input_context)
    spec = (unmasked_feature_spec(max_seq_length) if rule is not None
            else feature_spec(max_seq_length, max_predictions_per_seq))
    seed_value = 0 if seed is None else int(seed)

    def parse(serialized, key):
        parsed = tf.io.parse_single_example(serialized, spec)
        features = {name: tf.cast(t, tf.int32) if t.dtype == tf.int64 else t for name, t in parsed.items()}
        return features if rule is None else mask_example(features, key, seed_value, rule)

    # deterministic: the masks do not depend on timing, but the order of examples must not either.
    examples = records.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if packing:
        examples = packing_lib.pack(examples, max_seq_length, max_predictions_per_seq, packing)
        if sharded:
            # Every pipeline packs the whole stream and keeps its replicas' rows, so a global
            # batch is the same rows whatever the number of workers.
            examples = pipeline_share(examples, batch_size, input_context)
    if pad_final_batch:
        batches = examples.batch(batch_size).map(lambda f: pad_batch(f, batch_size))
    else:
        batches = examples.batch(batch_size, drop_remainder=True)
    return batches.prefetch(tf.data.AUTOTUNE)


def pipeline_share(records: tf.data.Dataset, per_replica_batch: int,
                   input_context: tf.distribute.InputContext) -> tf.data.Dataset:
    """This input pipeline's records: from each global batch of the shared stream (the next
    per_replica_batch x num_replicas_in_sync records), the slice of this pipeline's replicas.

    Records stay serialized (string scalars) here, so the dropped ones are never parsed.
    """
    local_replicas = input_context.num_replicas_in_sync // input_context.num_input_pipelines
    size = local_replicas * per_replica_batch
    start = input_context.input_pipeline_id * size
    global_batch = per_replica_batch * input_context.num_replicas_in_sync
    return (records.batch(global_batch, drop_remainder=True)
            .map(lambda *batch: tf.nest.map_structure(lambda t: t[start:start + size],
                                                      batch if len(batch) > 1 else batch[0]))
            .unbatch())
