"""The record format: google-research/bert's pretraining features, nothing more.

The trainer parses records with `feature_spec`; the writer (`_records.c`, via
`records.py`) encodes exactly these names, shapes and dtypes.
"""
import tensorflow as tf

# The writing order of google-research/bert's write_instance_to_example_files.
FEATURE_NAMES = (
    "input_ids",             # int64[max_seq_length]: WordPiece ids, 0-padded
    "input_mask",            # int64[max_seq_length]: 1 for real tokens, 0 for padding
    "segment_ids",           # int64[max_seq_length]: 0 for [CLS] A [SEP], 1 for B [SEP]
    "masked_lm_positions",   # int64[max_predictions_per_seq]: indices into input_ids, 0-padded
    "masked_lm_ids",         # int64[max_predictions_per_seq]: original ids there, 0-padded
    "masked_lm_weights",     # float32[max_predictions_per_seq]: 1.0 real, 0.0 padding
    "next_sentence_labels",  # int64[1]: 1 = B is a random sentence, 0 = B follows A
)


# Records for dynamic masking (PretrainingDataOptions.dynamic_masking) carry only these:
# input_ids unmasked, and no masked_lm_* features, so that a reader expecting masked records
# fails on the missing feature instead of training on instances without predictions.
UNMASKED_FEATURE_NAMES = ("input_ids", "input_mask", "next_sentence_labels", "segment_ids")
MASKED_LM_FEATURE_NAMES = ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights")


def unmasked_feature_spec(max_seq_length: int) -> dict:
    """{name: tf.io.FixedLenFeature} of unmasked records: input_ids, input_mask, segment_ids
    int64 [max_seq_length], next_sentence_labels int64 [1]."""
    if max_seq_length < 1:
        raise ValueError(f"unmasked_feature_spec needs a positive max_seq_length, got {max_seq_length}.")
    seq = [max_seq_length]
    return {
        "input_ids": tf.io.FixedLenFeature(seq, tf.int64),
        "input_mask": tf.io.FixedLenFeature(seq, tf.int64),
        "segment_ids": tf.io.FixedLenFeature(seq, tf.int64),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def feature_spec(max_seq_length: int, max_predictions_per_seq: int) -> dict:
    """Returns {name: tf.io.FixedLenFeature} for tf.io.parse_example.

    Shapes: [max_seq_length] for input_ids/input_mask/segment_ids,
    [max_predictions_per_seq] for masked_lm_*, [1] for next_sentence_labels.
    Dtypes are the original's: int64 (the trainer may cast to int32 for TPUs)
    and float32 for masked_lm_weights.
    """
    if max_seq_length < 1 or max_predictions_per_seq < 1:
        raise ValueError(f"feature_spec needs positive sizes, got max_seq_length={max_seq_length}, "
                         f"max_predictions_per_seq={max_predictions_per_seq}.")
    seq = [max_seq_length]
    pred = [max_predictions_per_seq]
    return {
        "input_ids": tf.io.FixedLenFeature(seq, tf.int64),
        "input_mask": tf.io.FixedLenFeature(seq, tf.int64),
        "segment_ids": tf.io.FixedLenFeature(seq, tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature(pred, tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature(pred, tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature(pred, tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }
