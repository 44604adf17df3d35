"""Masked-LM predictions for a batch of instances, as BERT's create_masked_lm_predictions.

The rule is the original's: candidates are all tokens but [CLS] and [SEP]
(with whole-word masking, a "##" piece joins the previous candidate's group);
groups are visited in random order and taken while the number of predictions
stays <= num_to_predict = min(max_predictions_per_seq,
max(1, round(len(tokens) * masked_lm_prob))) (a group that would overshoot is
skipped); each chosen token becomes [MASK] 80% of the time, stays 10%, and
becomes a uniformly random vocabulary id 10%.

It runs on [N, max_seq_length] arrays at once instead of one instance at a
time: without whole-word masking the shuffle's first k candidates are drawn as
a uniform random k-subset (Floyd's algorithm, a loop over k with vector
operations over the N instances); with it, random ranks replace the shuffle and
the greedy walk over groups is a loop over group rank.
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
    p = max_predictions_per_seq
    col = np.arange(seq_len)[None, :]
    candidate = (col < lengths[:, None]) & (input_ids != cls_id) & (input_ids != sep_id)
    k = num_to_predict(lengths, masked_lm_prob, max_predictions_per_seq)

    if is_continuation is None:
        positions, count = _random_choice(candidate, k, p, rng)
    else:
        chosen = _whole_word_choice(input_ids, candidate, k, rng, is_continuation)
        rows, cols = np.nonzero(chosen)  # row-major: positions ascending within a row
        count = chosen.sum(axis=1)
        slot = np.arange(len(rows)) - np.repeat(np.cumsum(count) - count, count)
        positions = np.zeros((n, p), np.int64)
        positions[rows, slot] = cols

    real = np.arange(p)[None, :] < count[:, None]  # [N, P]
    originals = np.where(real, np.take_along_axis(input_ids, positions, axis=1), 0)
    # Drawn for every slot (padding ones are discarded): one draw per batch, not per token.
    r = rng.random((n, p))
    keep = rng.random((n, p)) < 0.5
    random_ids = rng.integers(0, vocab_size, (n, p))
    replaced = np.where(r < 0.8, mask_id, np.where(keep, originals, random_ids))
    output_ids = input_ids.astype(np.int32, copy=True)
    rows, slots = np.nonzero(real)
    output_ids[rows, positions[rows, slots]] = replaced[rows, slots]
    return MaskedBatch(output_ids, positions.astype(np.int32), originals.astype(np.int32),
                       real.astype(np.float32))


def _random_choice(candidate, k, max_predictions, rng):
    """The first k candidates of a random shuffle, per row, in ascending position order.

    A shuffle's first k elements are a uniform random k-subset, which Floyd's
    algorithm draws in k steps (for j = c-k .. c-1: take a random t <= j, or j
    if t is taken already); each step is a few operations over all N rows, so
    the cost is O(N * max_predictions), not a sort of every row.

    Returns:
      positions int64 [N, max_predictions] (0-padded), count int64 [N].
    """
    n, seq_len = candidate.shape
    seen = np.cumsum(candidate, axis=1, dtype=np.int32)  # candidates in columns <= j
    c = seen[:, -1].astype(np.int64)
    count = np.minimum(k, c)
    rows = np.arange(n)
    taken = np.zeros((n, seq_len + max_predictions), bool)  # by candidate rank
    ranks = np.full((n, max_predictions), seq_len, np.int64)  # seq_len = no pick
    u = rng.random((n, max_predictions))
    for step in range(int(count.max(initial=0))):
        active = step < count
        j = c - count + step  # rows still drawing: j in [c - count, c - 1]
        t = (u[:, step] * (j + 1)).astype(np.int64)
        pick = np.where(taken[rows, t], j, t)
        pick = np.where(active, pick, seq_len + step)  # a column nobody reads
        taken[rows, pick] = True
        ranks[:, step] = np.where(active, pick, seq_len)
    ranks.sort(axis=1)  # ascending rank = ascending position
    real = ranks < seq_len
    # Rank r -> column: the first column with r + 1 candidates up to it, i.e. the
    # fixed point of col = r + (non-candidates in columns <= col), reached from
    # col = r in one step per run of non-candidates before it ([CLS], [SEP]: ~3).
    r = np.where(real, ranks, 0)
    col = r
    for _ in range(seq_len + 1):
        nxt = np.where(real, r + (col + 1 - np.take_along_axis(seen, col, axis=1)), 0)
        if np.array_equal(nxt, col):
            break
        col = nxt
    positions = np.where(real, col, 0)
    return positions.astype(np.int64), count


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
