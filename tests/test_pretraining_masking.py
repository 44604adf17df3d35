"""Masked-LM choice (masking.py): BERT's proportions, exclusions and whole-word rule."""
import numpy as np

from components.pretraining_data import masking

CLS, SEP, MASK, VOCAB = 2, 3, 4, 1000


def _batch(n, seq_len, rng):
    lengths = rng.integers(10, seq_len + 1, n)
    ids = rng.integers(10, VOCAB, (n, seq_len)).astype(np.int32)
    col = np.arange(seq_len)[None, :]
    ids[col >= lengths[:, None]] = 0
    ids[:, 0] = CLS
    sep_a = rng.integers(2, lengths - 2)
    ids[np.arange(n), sep_a] = SEP
    ids[np.arange(n), lengths - 1] = SEP
    return ids, lengths


def _mask(ids, lengths, rng, **kw):
    args = dict(masked_lm_prob=0.15, max_predictions_per_seq=20, vocab_size=VOCAB, mask_id=MASK,
                cls_id=CLS, sep_id=SEP)
    args.update(kw)
    return masking.mask_batch(ids, lengths, rng, **args)


def test_proportions_exclusions_and_layout():
    rng = np.random.default_rng(0)
    ids, lengths = _batch(4000, 128, rng)
    out = _mask(ids, lengths, rng)
    w = out.masked_lm_weights
    n_pred = w.sum(axis=1).astype(int)
    expected = masking.num_to_predict(lengths, 0.15, 20)
    assert (n_pred == expected).all()  # plenty of candidates: exactly num_to_predict
    assert abs(n_pred.sum() / lengths.sum() - 0.15) < 0.01
    rows, slots = np.nonzero(w)
    pos = out.masked_lm_positions[rows, slots]
    orig = ids[rows, pos]
    assert (out.masked_lm_ids[rows, slots] == orig).all()
    assert not np.isin(orig, [CLS, SEP, 0]).any()        # never [CLS], [SEP] or padding
    assert (pos < lengths[rows]).all() and (pos > 0).all()
    # Positions ascending; padding slots are 0 with weight 0.
    p = np.where(w > 0, out.masked_lm_positions, 10**6)
    assert (np.diff(np.sort(p, axis=1), axis=1) >= 0).all()
    assert (out.masked_lm_positions[w == 0] == 0).all() and (out.masked_lm_ids[w == 0] == 0).all()
    new = out.input_ids[rows, pos]
    frac_mask = (new == MASK).mean()
    frac_kept = (new == orig).mean()
    frac_random = 1 - frac_mask - frac_kept
    total = len(new)  # ~40k predictions: 3 sigma of a 10% rate is ~0.45%
    assert total > 30_000
    assert abs(frac_mask - 0.8) < 0.01 and abs(frac_kept - 0.1) < 0.01
    assert abs(frac_random - 0.1) < 0.01
    # Only chosen positions change.
    changed = out.input_ids != ids
    chosen = np.zeros_like(changed)
    chosen[rows, pos] = True
    assert not (changed & ~chosen).any()


def test_num_to_predict_rule():
    lengths = np.array([3, 10, 13, 17, 100, 128, 500])
    # min(20, max(1, round(n * 0.15))) with Python 3 rounding (half to even).
    expected = [min(20, max(1, int(round(n * 0.15)))) for n in lengths]
    assert masking.num_to_predict(lengths, 0.15, 20).tolist() == expected


def test_few_candidates_and_max_predictions_cap():
    rng = np.random.default_rng(1)
    ids = np.array([[CLS, 50, SEP, 51, SEP, 0, 0, 0]], np.int32)
    out = _mask(ids, np.array([5]), rng, masked_lm_prob=1.0, max_predictions_per_seq=3)
    assert out.masked_lm_weights.sum() == 2  # only two maskable tokens
    assert sorted(out.masked_lm_positions[0][:2].tolist()) == [1, 3]


def test_whole_word_masking_masks_all_pieces():
    rng = np.random.default_rng(2)
    n, seq_len = 2000, 64
    ids, lengths = _batch(n, seq_len, rng)
    is_cont = np.zeros(VOCAB, bool)
    is_cont[500:] = True  # ids >= 500 are "##" pieces
    out = _mask(ids, lengths, rng, is_continuation=is_cont)
    chosen = np.zeros(ids.shape, bool)
    rows, slots = np.nonzero(out.masked_lm_weights)
    chosen[rows, out.masked_lm_positions[rows, slots]] = True
    candidate = (np.arange(seq_len)[None] < lengths[:, None]) & ~np.isin(ids, [CLS, SEP])
    checked = 0
    for r in range(n):
        prev = None  # previous candidate position (the original skips [CLS]/[SEP])
        for j in np.nonzero(candidate[r])[0]:
            if prev is not None and is_cont[ids[r, j]]:
                assert chosen[r, j] == chosen[r, prev]
                checked += chosen[r, j]
            prev = j
    assert checked > 1000
    assert (out.masked_lm_weights.sum(axis=1) <= masking.num_to_predict(lengths, 0.15, 20)).all()
    assert not (chosen & ~candidate).any()
