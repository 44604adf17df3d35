"""Checks of the training data, made before the first step or when a read fails.

A mismatch between the records and the flags (say records of max_seq_length 128 read
with --max_seq_length 512) would otherwise surface as a shape error deep inside a
compiled step; a corrupt shard would surface as "corrupted record at 1234" with no
file name. These checks turn both into errors that name the feature or the shard.
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from components.pretraining_data.schema import MASKED_LM_FEATURE_NAMES
from components.trainer.input_pipeline import compression_of


class DataError(ValueError):
    """The training or evaluation data do not match what the run was configured for."""


def _expected_features(max_seq_length: int, max_predictions_per_seq: int) -> dict[str, tuple[str, int, str]]:
    """feature -> (value list kind, length, the flag that sets the length)."""
    seq = ("int64_list", max_seq_length, "--max_seq_length")
    preds = ("int64_list", max_predictions_per_seq, "--max_predictions_per_seq")
    return {
        "input_ids": seq, "input_mask": seq, "segment_ids": seq,
        "masked_lm_positions": preds, "masked_lm_ids": preds,
        "masked_lm_weights": ("float_list", max_predictions_per_seq, "--max_predictions_per_seq"),
        "next_sentence_labels": ("int64_list", 1, ""),
    }


def check_split(split: str, files: Sequence[str], max_seq_length: int, max_predictions_per_seq: int,
                masked: bool = True) -> None:
    """Refuses an empty split, or a first record whose features do not fit the flags.

    masked=False: the records must be unmasked (dynamic masking): no masked_lm_* features.

    Raises:
      DataError naming the split, the file and the feature, with the expected shape.
    """
    if not files:
        raise DataError(f"The {split} split has no files: check the Examples artifact / --examples directory.")
    first_record = None
    for path in sorted(files):
        for record in tf.data.TFRecordDataset(path, compression_type=compression_of(path)).take(1):
            first_record = (path, record.numpy())
        if first_record:
            break
    if first_record is None:
        raise DataError(f"The {split} split is empty: its {len(files)} file(s) hold no records "
                        f"(first: {sorted(files)[0]}).")
    path, serialized = first_record
    example = tf.train.Example.FromString(serialized)
    features = example.features.feature
    has_masks = any(name in features for name in MASKED_LM_FEATURE_NAMES)
    if masked and not has_masks and "input_ids" in features:
        raise DataError(
            f"The {split} records ({path}) are unmasked (no masked_lm_* features: made with "
            f"prepare-data --dynamic_masking); train on them with --dynamic_masking"
            + ("." if split == "train" else ", and give an eval split that is masked (prepare-data "
                                             "--dynamic_masking masks eval/ once)."))
    if not masked and has_masks:
        raise DataError(
            f"The {split} records ({path}) are already masked (masked_lm_* features), but "
            f"--dynamic_masking masks as it reads: make the records with prepare-data "
            f"--dynamic_masking (unmasked, dupe_factor 1), or train without --dynamic_masking.")
    expected = _expected_features(max_seq_length, max_predictions_per_seq)
    if not masked:
        expected = {k: v for k, v in expected.items() if k not in MASKED_LM_FEATURE_NAMES}
    for name, (kind, length, flag) in expected.items():
        if name not in features:
            raise DataError(
                f"Feature '{name}' is missing from the {split} records ({path}); expected {kind} of "
                f"length {length}. The records must follow the create_pretraining_data schema.")
        actual_kind = features[name].WhichOneof("kind")
        values = getattr(features[name], actual_kind).value if actual_kind else []
        if actual_kind != kind or len(values) != length:
            hint = (f" The records were probably made with a different {flag}; set {flag}={len(values)} "
                    f"or regenerate the records.") if flag else ""
            raise DataError(
                f"Feature '{name}' in the {split} records ({path}) is {actual_kind or 'empty'}[{len(values)}], "
                f"expected {kind}[{length}].{hint}")


def find_corrupt_shards(files: Sequence[str]) -> list[tuple[str, str]]:
    """Reads every shard to the end; returns (path, error message) for those that fail.

    Used only after a read error, so its cost (a full pass) is paid only on failure.
    """
    corrupt = []
    for path in sorted(files):
        try:
            for _ in tf.data.TFRecordDataset(path, compression_type=compression_of(path)):
                pass
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            corrupt.append((path, e.message.splitlines()[0] if e.message else type(e).__name__))
    return corrupt


def is_record_read_error(error: Exception) -> bool:
    """Whether a failed step or eval batch failed while reading records (a corrupt or
    truncated shard), rather than in the model."""
    if isinstance(error, tf.errors.DataLossError):
        return True
    message = str(error).lower()
    return isinstance(error, tf.errors.InvalidArgumentError) and ("corrupt" in message or "truncated" in message)


def corrupt_shard_error(files: Sequence[str], cause: Exception) -> DataError:
    """The error to raise when a read failed: names the corrupt shard(s) found."""
    corrupt = find_corrupt_shards(files)
    if not corrupt:
        return DataError(f"Reading the training records failed: {cause}")
    listing = "; ".join(f"{path}: {message}" for path, message in corrupt)
    return DataError(f"Corrupt or truncated TFRecord shard(s), no records were skipped: {listing}. "
                     f"Regenerate or remove these shards.")
