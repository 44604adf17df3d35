"""Serialises batches of pretraining instances to tf.train.Example bytes with numpy.

Why not `tf.train.Example(...).SerializeToString()`: building one proto per
instance costs tens of microseconds of Python, more than everything else the job
does per instance; and C++ map serialisation order is not guaranteed stable,
which would break byte-identical reruns. The Example layout is fixed (seven
features, fixed lengths), so only the varint payloads and the length prefixes
vary, and both can be computed for a whole batch at once.

The bytes are exactly what `example.SerializeToString(deterministic=True)` gives
(features in sorted-name order); tests/test_pretraining_example_encoder.py checks it.
"""
import numpy as np

# Protobuf wire tags (field_number << 3 | wire_type 2 = length-delimited).
_TAG_1 = 0x0A   # Example.features, Features.feature entries, MapEntry.key, *List.value (packed)
_TAG_2 = 0x12   # MapEntry.value, Feature.float_list
_TAG_3 = 0x1A   # Feature.int64_list


def varints(values: np.ndarray):
    """Varint-encodes each row of non-negative integers.

    Args:
      values: int array [N, K] (int64 range; negatives are encoded as 10-byte
        two's complement, as protobuf does).
    Returns:
      (flat uint8 [sum of row lengths] in row-major order, row byte counts int64 [N]).
    """
    v = np.ascontiguousarray(values, dtype=np.int64).view(np.uint64)
    n = v.shape[0]
    if v.size == 0:
        return np.zeros(0, np.uint8), np.zeros(n, np.int64)
    top = int(v.max())
    if top < 0x80:  # the common case for masks, segment ids, labels
        return v.astype(np.uint8).ravel(), np.full(n, v.shape[1], np.int64)
    width = 1
    while width < 10 and top >= (1 << (7 * width)):
        width += 1
    nbytes = np.ones(v.shape, np.int64)
    for k in range(1, width):
        nbytes += v >= np.uint64(1 << (7 * k))
    pos = np.arange(width)
    groups = (v[..., None] >> (np.uint64(7) * pos.astype(np.uint64))) & np.uint64(0x7F)
    groups = groups.astype(np.uint8)
    groups[pos < nbytes[..., None] - 1] |= 0x80  # continuation bit on all but the last byte
    flat = groups[pos < nbytes[..., None]]
    return flat, nbytes.sum(axis=-1)


class _Parts:
    """N byte strings kept as a list of column parts until materialised once.

    A part is (flat uint8, row lengths [N]) or (constant bytes as uint8, None).
    """

    def __init__(self, n: int, parts=None):
        self.n = n
        self.parts = list(parts or [])

    def const(self, data: bytes) -> "_Parts":
        self.parts.append((np.frombuffer(data, np.uint8), None))
        return self

    def var(self, flat: np.ndarray, lens: np.ndarray) -> "_Parts":
        self.parts.append((flat, lens))
        return self

    def extend(self, other: "_Parts") -> "_Parts":
        self.parts.extend(other.parts)
        return self

    def lengths(self) -> np.ndarray:
        total = np.zeros(self.n, np.int64)
        for flat, lens in self.parts:
            total += len(flat) if lens is None else lens
        return total

    def length_delimited(self, tag: int) -> "_Parts":
        """Returns tag + varint(len(row)) + row, for every row."""
        flat, lens = varints(self.lengths()[:, None])
        return _Parts(self.n).const(bytes([tag])).var(flat, lens).extend(self)

    def materialise(self):
        """Returns (blob bytes, offsets int64 [N + 1]); row i is blob[offsets[i]:offsets[i+1]]."""
        merged = []  # adjacent constants merged: fewer scatter passes
        for flat, lens in self.parts:
            if lens is None and merged and merged[-1][1] is None:
                merged[-1] = (np.concatenate([merged[-1][0], flat]), None)
            else:
                merged.append((flat, lens))
        n = self.n
        col_lens = np.stack(
            [np.full(n, len(f), np.int64) if l is None else l for f, l in merged], axis=1)
        row_lens = col_lens.sum(axis=1)
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(row_lens, out=offsets[1:])
        col_starts = offsets[:-1, None] + np.cumsum(col_lens, axis=1) - col_lens
        out = np.empty(int(offsets[-1]), np.uint8)
        for j, (flat, lens) in enumerate(merged):
            if lens is None:
                dest = col_starts[:, j, None] + np.arange(len(flat))
                out[dest] = flat
            elif len(flat):
                src_starts = np.cumsum(lens) - lens
                dest = np.repeat(col_starts[:, j] - src_starts, lens) + np.arange(len(flat))
                out[dest] = flat
        return out.tobytes(), offsets


def _feature_entry(name: str, value_list: _Parts, list_tag: int) -> _Parts:
    """One Features.feature map entry: key=name, value=Feature{<list_tag>: value_list}."""
    feature = value_list.length_delimited(list_tag)
    key = name.encode()
    entry = _Parts(value_list.n).const(bytes([_TAG_1, len(key)]) + key)
    entry.extend(feature.length_delimited(_TAG_2))
    return entry.length_delimited(_TAG_1)


def _int64_feature(name: str, values: np.ndarray) -> _Parts:
    flat, lens = varints(values)
    packed = _Parts(values.shape[0]).var(flat, lens).length_delimited(_TAG_1)
    return _feature_entry(name, packed, _TAG_3)


def _float_feature(name: str, values: np.ndarray) -> _Parts:
    n, k = values.shape
    data = np.ascontiguousarray(values, dtype="<f4").view(np.uint8).ravel()
    packed = _Parts(n).var(data, np.full(n, 4 * k, np.int64)).length_delimited(_TAG_1)
    return _feature_entry(name, packed, _TAG_2)


def encode_examples(input_ids, input_mask, segment_ids, masked_lm_positions, masked_lm_ids,
                    masked_lm_weights, next_sentence_labels):
    """Serialises N instances as tf.train.Example.

    Args:
      input_ids, input_mask, segment_ids: int [N, max_seq_length].
      masked_lm_positions, masked_lm_ids: int [N, max_predictions_per_seq].
      masked_lm_weights: float [N, max_predictions_per_seq] (stored as float32).
      next_sentence_labels: int [N] or [N, 1].
    Returns:
      (blob bytes, offsets int64 [N + 1]): record i is blob[offsets[i]:offsets[i + 1]].
    """
    n = input_ids.shape[0]
    labels = np.asarray(next_sentence_labels).reshape(n, 1)
    # Sorted names: the order deterministic protobuf serialisation uses for maps.
    features = [
        _int64_feature("input_ids", input_ids),
        _int64_feature("input_mask", input_mask),
        _int64_feature("masked_lm_ids", masked_lm_ids),
        _int64_feature("masked_lm_positions", masked_lm_positions),
        _float_feature("masked_lm_weights", masked_lm_weights),
        _int64_feature("next_sentence_labels", labels),
        _int64_feature("segment_ids", segment_ids),
    ]
    body = _Parts(n)
    for f in features:
        body.extend(f)
    return body.length_delimited(_TAG_1).materialise()
