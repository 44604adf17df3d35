"""Dynamic masking: google-research/bert's masked-LM rule, applied as the Trainer reads a record.

Records written with `prepare-data --dynamic_masking` hold unmasked instances (no
masked_lm_* features, see pretraining_data/schema.py). Each time the input pipeline reads one
it draws the predictions anew, with the rule of create_masked_lm_predictions (the same as
pretraining_data/_records.c, which masks the static records):
  - candidates: every real token but [CLS] and [SEP]; with whole-word masking a "##" piece
    joins the previous candidate's group;
  - num_to_predict = min(max_predictions_per_seq, max(1, round(length * masked_lm_prob)))
    (length counts [CLS] and [SEP]; round half to even, as Python 3);
  - groups in random order, each taken if the predictions stay <= num_to_predict (one that
    would overshoot is skipped); without whole-word masking every group is one token, so
    this is a uniform random subset of num_to_predict candidates (top-k of uniform scores);
  - each chosen token: 80% [MASK], 10% kept, 10% a uniformly random id; positions ascending.

Randomness is stateless, keyed by (seed, epoch, file index, record index in its file): an
example gets the same mask in the same epoch whatever order, batch, worker count or restart
reads it in, so a run resumed after a kill trains on exactly the masks of an unbroken one,
and a new epoch gives new masks.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

# Streams folded into an example's seed: one per random draw of the rule.
_CHOICE, _KEEP_OR_MASK, _KEEP_OR_RANDOM, _RANDOM_ID = 1, 2, 3, 4


@dataclasses.dataclass(frozen=True)
class MaskingRule:
    """What the rule needs from the data options and the vocabulary.

    Attributes:
      max_predictions_per_seq, masked_lm_prob: as create_pretraining_data's flags.
      vocab_size, cls_id, sep_id, mask_id: from vocab.txt.
      is_continuation: bool [vocab_size], True for "##" pieces: whole-word masking; None: off.
    """

    max_predictions_per_seq: int
    masked_lm_prob: float
    vocab_size: int
    cls_id: int
    sep_id: int
    mask_id: int
    is_continuation: Optional[np.ndarray] = None


def rule_from_vocab(vocab_file: str, max_predictions_per_seq: int, masked_lm_prob: float,
                    whole_word: bool) -> MaskingRule:
    """The rule for the vocabulary in `vocab_file` (one token per line, as the data job reads it)."""
    with tf.io.gfile.GFile(vocab_file) as f:
        tokens = [line.strip() for line in f if line.strip()]
    index = {token: i for i, token in enumerate(tokens)}
    missing = [t for t in ("[CLS]", "[SEP]", "[MASK]") if t not in index]
    if missing:
        raise ValueError(f"{vocab_file} lacks {missing}: dynamic masking needs [CLS], [SEP] and [MASK].")
    continuation = np.array([t.startswith("##") for t in tokens], bool) if whole_word else None
    return MaskingRule(max_predictions_per_seq, masked_lm_prob, len(tokens), index["[CLS]"],
                       index["[SEP]"], index["[MASK]"], continuation)


def example_seed(seed: int, key: tf.Tensor) -> tf.Tensor:
    """int64 [2] stateless seed of one example: `seed` folded with key int64 [3] (epoch, file, record)."""
    s = tf.constant([seed & 0x7FFFFFFFFFFFFFFF, 0x5EED], tf.int64)
    for i in range(3):
        s = tf.random.experimental.stateless_fold_in(s, key[i])
    return s


def _stream(seed: tf.Tensor, stream: int) -> tf.Tensor:
    return tf.random.experimental.stateless_fold_in(seed, tf.constant(stream, tf.int64))


def _whole_word_choice(candidates: tf.Tensor, ids: tf.Tensor, is_continuation: tf.Tensor,
                       scores: tf.Tensor, num_to_predict: tf.Tensor) -> tf.Tensor:
    """bool [L]: the positions of the groups taken, visiting groups in order of `scores`."""
    length = tf.shape(ids)[0]
    cont = tf.logical_and(candidates, tf.gather(is_continuation, ids))
    seen_candidate = tf.cumsum(tf.cast(candidates, tf.int32), exclusive=True) > 0
    # A candidate starts a group unless it is a "##" piece after an earlier candidate.
    starts = tf.logical_and(candidates, tf.logical_not(tf.logical_and(cont, seen_candidate)))
    group = tf.cumsum(tf.cast(starts, tf.int32)) - 1  # [L], the group of each candidate
    num_groups = tf.reduce_sum(tf.cast(starts, tf.int32))
    group_of = tf.where(candidates, group, num_groups)  # non-candidates: an extra, unused id
    sizes = tf.math.unsorted_segment_sum(tf.ones([length], tf.int32), group_of, num_groups + 1)[:num_groups]
    start_scores = tf.boolean_mask(scores, starts)  # [G], in group order
    order = tf.argsort(start_scores, direction="DESCENDING")

    def body(r, count, taken):
        g = order[r]
        fits = count + sizes[g] <= num_to_predict
        return (r + 1, tf.where(fits, count + sizes[g], count),
                tf.tensor_scatter_nd_update(taken, [[g]], [fits]))

    _, _, taken = tf.while_loop(
        lambda r, count, _: tf.logical_and(r < num_groups, count < num_to_predict), body,
        (tf.constant(0), tf.constant(0), tf.zeros([num_groups], tf.bool)))
    taken = tf.concat([taken, [False]], 0)
    return tf.gather(taken, group_of)


def mask_example(features: dict, key: tf.Tensor, seed: int, rule: MaskingRule) -> dict:
    """Masks one unmasked example.

    Args:
      features: input_ids, input_mask, segment_ids int32 [L]; next_sentence_labels int32 [1].
      key: int64 [3], (epoch, file index, record index in the file).
      seed: the run's seed.
      rule: the masking rule.

    Returns:
      The features with input_ids masked, plus masked_lm_positions, masked_lm_ids int32 [P]
      and masked_lm_weights float32 [P] (0-padded, weight 0 on padding), P = max_predictions_per_seq.
    """
    P = rule.max_predictions_per_seq
    ids = features["input_ids"]
    length = tf.reduce_sum(tf.cast(features["input_mask"] > 0, tf.int32))
    L = tf.shape(ids)[0]
    real = tf.range(L) < length
    candidates = tf.logical_and(real, tf.logical_and(tf.not_equal(ids, rule.cls_id), tf.not_equal(ids, rule.sep_id)))
    num_to_predict = tf.cast(tf.round(tf.cast(length, tf.float64) * rule.masked_lm_prob), tf.int32)
    num_to_predict = tf.clip_by_value(num_to_predict, 1, P)

    s = example_seed(seed, key)
    scores = tf.random.stateless_uniform([L], _stream(s, _CHOICE))
    if rule.is_continuation is None:
        # A uniform random subset of min(num_to_predict, #candidates) candidates.
        ranked = tf.where(candidates, scores, -1.0)
        top = tf.math.top_k(ranked, k=tf.minimum(P, L)).indices
        num = tf.minimum(num_to_predict, tf.reduce_sum(tf.cast(candidates, tf.int32)))
        chosen = tf.scatter_nd(top[:num, None], tf.ones([num], tf.bool), [L])
    else:
        chosen = _whole_word_choice(candidates, ids, tf.constant(rule.is_continuation), scores,
                                    num_to_predict)

    to_mask = tf.random.stateless_uniform([L], _stream(s, _KEEP_OR_MASK)) < 0.8
    keep = tf.random.stateless_uniform([L], _stream(s, _KEEP_OR_RANDOM)) < 0.5
    random_ids = tf.random.stateless_uniform([L], _stream(s, _RANDOM_ID), minval=0, maxval=rule.vocab_size,
                                             dtype=tf.int32)
    replacement = tf.where(to_mask, tf.constant(rule.mask_id, ids.dtype),
                           tf.where(keep, ids, tf.cast(random_ids, ids.dtype)))
    positions = tf.cast(tf.where(chosen)[:, 0], tf.int32)  # ascending
    count = tf.shape(positions)[0]
    pad = [[0, P - count]]
    out = dict(features)
    out["input_ids"] = tf.where(chosen, replacement, ids)
    out["masked_lm_positions"] = tf.ensure_shape(tf.pad(positions, pad), [P])
    out["masked_lm_ids"] = tf.ensure_shape(tf.pad(tf.gather(ids, positions), pad), [P])
    out["masked_lm_weights"] = tf.ensure_shape(tf.pad(tf.ones([count], tf.float32), pad), [P])
    return out
