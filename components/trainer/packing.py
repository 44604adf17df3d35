"""Throughput mode's sequence packing: several instances per row, so no compute goes to padding.

As NVIDIA's MLPerf BERT packs sequences, rows of max_seq_length S hold up to K instances
back to back; the model then attends within each instance only (block-diagonal attention),
restarts positions per instance and pools each instance's [CLS] for next-sentence
prediction, so every instance's outputs are those it has alone (tested), and only the
padding left at the end of a row costs compute.

Packing is online, first-fit over M open rows (a pure tf.data `scan`, so the input
iterator's checkpoint keeps the open rows and a resumed run packs exactly as an unbroken
one): an instance goes into the first open row with room for its tokens, its masked-LM
predictions and one more instance; if none has room the fullest row is emitted and the
instance starts a new row in its place. Instances come in the order they are read (after
the shuffle), so packing adds no randomness of its own.

A packed row (all int32 unless said):
  input_ids, input_mask, segment_ids [S]: the instances' tokens back to back, 0-padded.
  packed_sequence_ids [S]: 1..k for the k instances, 0 on padding.
  position_ids [S]: each token's position in its own instance.
  masked_lm_positions, masked_lm_ids [PR], masked_lm_weights float32 [PR]: every instance's
    predictions, positions into the row; PR = max_predictions_per_seq + K (the instances'
    predictions are ~15% of the row's tokens, plus at most one each from rounding up).
  next_sentence_labels [K], next_sentence_weights float32 [K] (1 for a real instance),
  cls_positions [K]: per instance slot, its label and where it starts.
"""
from __future__ import annotations

import tensorflow as tf

NEXT_SENTENCE_WEIGHTS = "next_sentence_weights"
SEQUENCE_KEYS = ("input_ids", "input_mask", "segment_ids", "packed_sequence_ids", "position_ids")
PREDICTION_KEYS = ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights")
SLOT_KEYS = ("next_sentence_labels", NEXT_SENTENCE_WEIGHTS, "cls_positions")
DEFAULT_MAX_SEQUENCES_PER_ROW = 3
DEFAULT_OPEN_ROWS = 8


def row_predictions(max_predictions_per_seq: int, max_sequences_per_row: int) -> int:
    """PR, the masked-LM slots of a packed row."""
    return max_predictions_per_seq + max_sequences_per_row


def _empty_rows(rows: int, seq: int, preds: int, slots: int) -> dict:
    state = {key: tf.zeros([rows, seq], tf.int32) for key in SEQUENCE_KEYS}
    state.update({key: tf.zeros([rows, preds], tf.int32) for key in PREDICTION_KEYS[:2]})
    state["masked_lm_weights"] = tf.zeros([rows, preds], tf.float32)
    state.update({key: tf.zeros([rows, slots], tf.int32) for key in ("next_sentence_labels", "cls_positions")})
    state[NEXT_SENTENCE_WEIGHTS] = tf.zeros([rows, slots], tf.float32)
    state.update({"fill": tf.zeros([rows], tf.int32), "count": tf.zeros([rows], tf.int32),
                  "predictions": tf.zeros([rows], tf.int32)})
    return state


def pack(examples: tf.data.Dataset, max_seq_length: int, max_predictions_per_seq: int,
         max_sequences_per_row: int = DEFAULT_MAX_SEQUENCES_PER_ROW,
         open_rows: int = DEFAULT_OPEN_ROWS) -> tf.data.Dataset:
    """Packs a dataset of single masked instances into rows (see the module docstring).

    Args:
      examples: dicts of one instance: input_ids, input_mask, segment_ids int32 [S],
        masked_lm_positions, masked_lm_ids int32 [P], masked_lm_weights float32 [P],
        next_sentence_labels int32 [1]; real tokens first, then padding.
      max_sequences_per_row: K.
      open_rows: M, rows kept open at once (more: fuller rows, more work per instance).

    Returns:
      A dataset of packed rows (unbatched). At the end of a finite input the rows still
      open are emitted too, fullest first (training repeats its input, so it never ends).
    """
    S, K = max_seq_length, max_sequences_per_row
    PR = row_predictions(max_predictions_per_seq, K)
    M = open_rows
    positions = tf.range(S, dtype=tf.int32)

    def step(state, flush_and_ex):
        flush, ex = flush_and_ex
        mask = tf.cast(ex["input_mask"] > 0, tf.int32)
        length = tf.reduce_sum(mask)
        weights = tf.cast(ex["masked_lm_weights"], tf.float32)
        num_preds = tf.reduce_sum(tf.cast(weights > 0, tf.int32))
        fits = ((state["fill"] + length <= S) & (state["count"] < K)
                & (state["predictions"] + num_preds <= PR))
        any_fit = tf.logical_and(tf.reduce_any(fits), tf.logical_not(flush))
        # Nothing fits (or the input ended): emit the fullest row (one that has its K
        # instances counts as full) and start it afresh.
        fullness = state["fill"] + tf.cast(state["count"] >= K, tf.int32) * (S + 1)
        r = tf.where(any_fit, tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32),
                     tf.argmax(fullness, output_type=tf.int32))
        emitted = {key: state[key][r] for key in SEQUENCE_KEYS + PREDICTION_KEYS + SLOT_KEYS}
        emit = tf.logical_and(tf.logical_not(any_fit), state["fill"][r] > 0)
        keep = tf.cast(any_fit, tf.int32)
        row = {key: state[key][r] * tf.cast(keep, state[key].dtype) for key in state}
        offset, slot, pred_offset = row["fill"], row["count"], row["predictions"]

        def shifted(values, by):  # real values first, zeros after: a roll moves them into place
            return tf.roll(values, by, axis=0)

        new = {
            "input_ids": row["input_ids"] + shifted(ex["input_ids"] * mask, offset),
            "input_mask": row["input_mask"] + shifted(mask, offset),
            "segment_ids": row["segment_ids"] + shifted(ex["segment_ids"] * mask, offset),
            "packed_sequence_ids": row["packed_sequence_ids"] + shifted(mask * (slot + 1), offset),
            "position_ids": row["position_ids"] + shifted(positions * mask, offset),
        }
        real_pred = tf.cast(weights > 0, tf.int32)
        pad = [[0, PR - max_predictions_per_seq]]
        new["masked_lm_positions"] = row["masked_lm_positions"] + shifted(
            tf.pad((ex["masked_lm_positions"] + offset) * real_pred, pad), pred_offset)
        new["masked_lm_ids"] = row["masked_lm_ids"] + shifted(tf.pad(ex["masked_lm_ids"] * real_pred, pad),
                                                              pred_offset)
        new["masked_lm_weights"] = row["masked_lm_weights"] + shifted(
            tf.pad(weights * tf.cast(real_pred, tf.float32), pad), pred_offset)
        at_slot = tf.one_hot(slot, K, dtype=tf.int32)
        new["next_sentence_labels"] = row["next_sentence_labels"] + at_slot * tf.reshape(ex["next_sentence_labels"], [])
        new[NEXT_SENTENCE_WEIGHTS] = row[NEXT_SENTENCE_WEIGHTS] + tf.cast(at_slot, tf.float32)
        new["cls_positions"] = row["cls_positions"] + at_slot * offset
        new["fill"] = offset + length
        new["count"] = slot + 1
        new["predictions"] = pred_offset + num_preds
        # A flush marker (end of input) only empties the row.
        new = {key: value * tf.cast(tf.logical_not(flush), value.dtype) for key, value in new.items()}
        state = {key: tf.tensor_scatter_nd_update(state[key], [[r]], new[key][tf.newaxis]) for key in state}
        return state, (emit, emitted)

    # M flush markers after the input: each emits the fullest row still open.
    blank = tf.nest.map_structure(lambda spec: tf.zeros(spec.shape, spec.dtype), examples.element_spec)
    flushes = tf.data.Dataset.from_tensors((True, blank)).repeat(M)
    marked = examples.map(lambda ex: (False, ex)).concatenate(flushes)
    initial = _empty_rows(M, S, PR, K)
    return (marked.scan(initial, step)
            .filter(lambda emit, row: emit)
            .map(lambda emit, row: row))
