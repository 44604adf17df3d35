"""Masked-LM predictions for a batch of instances, as BERT's create_masked_lm_predictions.

The rule is the original's: candidates are all tokens but [CLS] and [SEP]
(with whole-word masking, a "##" piece joins the previous candidate's group);
groups are visited in random order and taken while the number of predictions
stays <= num_to_predict = min(max_predictions_per_seq,
max(1, round(len(tokens) * masked_lm_prob))) (a group that would overshoot is
skipped); each chosen token becomes [MASK] 80% of the time, stays 10%, and
becomes a uniformly random vocabulary id 10%.

It runs on [N, max_seq_length] arrays at once instead of one instance at a
time: random ranks replace the shuffle, and the greedy walk over groups is a
loop over group rank with vector operations over the N instances.
"""
import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class MaskedBatch:
    """Output of mask_batch.

    Attributes:
      input_ids: int32 [N, L], with the replacements applied.
      masked_lm_positions: int32 [N, P], ascending, 0-padded.
      masked_lm_ids: int32 [N, P], original ids at those positions, 0-padded.
      masked_lm_weights: float32 [N, P], 1.0 for real predictions.
    """

    input_ids: np.ndarray
    masked_lm_positions: np.ndarray
    masked_lm_ids: np.ndarray
    masked_lm_weights: np.ndarray


def num_to_predict(lengths: np.ndarray, masked_lm_prob: float, max_predictions_per_seq: int):
    """min(max_pred, max(1, int(round(n * prob)))) per instance; np.rint rounds half to
    even like Python 3's round."""
    n = np.rint(lengths.astype(np.float64) * masked_lm_prob).astype(np.int64)
    return np.minimum(max_predictions_per_seq, np.maximum(1, n))


def mask_batch(input_ids: np.ndarray, lengths: np.ndarray, rng: np.random.Generator, *,
               masked_lm_prob: float, max_predictions_per_seq: int, vocab_size: int,
               mask_id: int, cls_id: int, sep_id: int,
               is_continuation: "np.ndarray | None" = None) -> MaskedBatch:
    """Chooses and applies the masked-LM predictions.

    Args:
      input_ids: int [N, L], [CLS] A [SEP] B [SEP] then padding.
      lengths: int [N], real tokens per row (padding is never a candidate).
      rng: numpy generator (the bucket's).
      is_continuation: bool [vocab_size], True for "##" pieces; given = whole-word masking.
    """
    n, seq_len = input_ids.shape
    col = np.arange(seq_len)[None, :]
    candidate = (col < lengths[:, None]) & (input_ids != cls_id) & (input_ids != sep_id)
    k = num_to_predict(lengths, masked_lm_prob, max_predictions_per_seq)

    if is_continuation is None:
        # One token per group: the k candidates with the smallest random keys.
        # argpartition finds each row's max_pred smallest keys in O(L); only
        # those are sorted (k <= max_pred), not the whole row.
        keys = np.where(candidate, rng.random((n, seq_len), dtype=np.float32), 2.0)
        p = min(max_predictions_per_seq, seq_len)
        smallest = (np.argpartition(keys, p - 1, axis=1)[:, :p] if p < seq_len
                    else np.broadcast_to(np.arange(seq_len), (n, seq_len)))
        ranked = np.take_along_axis(
            smallest, np.argsort(np.take_along_axis(keys, smallest, axis=1), axis=1), axis=1)
        chosen = np.zeros((n, seq_len), bool)
        take = np.arange(p)[None, :] < k[:, None]
        np.put_along_axis(chosen, ranked, take, axis=1)
        chosen &= candidate
    else:
        chosen = _whole_word_choice(input_ids, candidate, k, rng, is_continuation)

    rows, cols = np.nonzero(chosen)  # row-major: positions ascending within a row
    originals = input_ids[rows, cols]
    r = rng.random(len(rows))
    keep = rng.random(len(rows)) < 0.5
    random_ids = rng.integers(0, vocab_size, len(rows))
    replaced = np.where(r < 0.8, mask_id, np.where(keep, originals, random_ids))
    output_ids = input_ids.astype(np.int32, copy=True)
    output_ids[rows, cols] = replaced

    slot = (np.cumsum(chosen, axis=1) - 1)[rows, cols]
    positions = np.zeros((n, max_predictions_per_seq), np.int32)
    ids = np.zeros((n, max_predictions_per_seq), np.int32)
    weights = np.zeros((n, max_predictions_per_seq), np.float32)
    positions[rows, slot] = cols
    ids[rows, slot] = originals
    weights[rows, slot] = 1.0
    return MaskedBatch(output_ids, positions, ids, weights)


def _whole_word_choice(input_ids, candidate, k, rng, is_continuation):
    """bool [N, L]: the original's greedy walk over shuffled word groups."""
    n, seq_len = input_ids.shape
    seen_candidate = (np.cumsum(candidate, axis=1) - candidate) > 0
    # As the original, a "##" piece joins the previous *candidate* group, even
    # across [SEP] (its check skips [CLS]/[SEP] before looking at the piece).
    joins = candidate & is_continuation[input_ids] & seen_candidate
    starts = candidate & ~joins
    group = np.cumsum(starts, axis=1) - 1  # group index of each candidate position
    num_groups = starts.sum(axis=1)
    rows = np.nonzero(candidate)[0]
    sizes = np.zeros((n, seq_len), np.int64)
    np.add.at(sizes, (rows, group[candidate]), 1)
    keys = np.where(np.arange(seq_len)[None, :] < num_groups[:, None],
                    rng.random((n, seq_len)), 2.0)
    order = np.argsort(keys, axis=1, kind="stable")
    shuffled_sizes = np.take_along_axis(sizes, order, axis=1)
    taken = np.zeros((n, seq_len), bool)
    count = np.zeros(n, np.int64)
    for r in range(int(num_groups.max(initial=0))):
        s = shuffled_sizes[:, r]
        take = (s > 0) & (count + s <= k)
        count += np.where(take, s, 0)
        taken[:, r] = take
    group_taken = np.zeros((n, seq_len), bool)
    np.put_along_axis(group_taken, order, taken, axis=1)
    safe_group = np.where(candidate, group, 0)
    return candidate & np.take_along_axis(group_taken, safe_group, axis=1)
