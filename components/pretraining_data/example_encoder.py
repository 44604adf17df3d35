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
import functools

import numpy as np

# Protobuf wire tags (field_number << 3 | wire_type 2 = length-delimited).
_TAG_1 = 0x0A   # Example.features, Features.feature entries, MapEntry.key, *List.value (packed)
_TAG_2 = 0x12   # MapEntry.value, Feature.float_list
_TAG_3 = 0x1A   # Feature.int64_list
# Values below this are varint-encoded by table lookup (ids, positions, lengths).
_TABLE_LIMIT = 1 << 21


@functools.lru_cache(maxsize=4)
def _varint_table(size: int):
    """(uint32 [size] little-endian varint bytes, uint32 [size] 0x01 per used byte), width <= 3."""
    v = np.arange(size, dtype=np.uint32)
    nbytes = 1 + (v >= 1 << 7).astype(np.uint32) + (v >= 1 << 14)
    packed = np.zeros(size, np.uint32)
    used = np.zeros(size, np.uint32)
    for k in range(3):
        byte = (v >> np.uint32(7 * k)) & np.uint32(0x7F)
        byte |= (nbytes > k + 1).astype(np.uint32) << np.uint32(7)  # continuation bit
        packed |= np.where(nbytes > k, byte, 0).astype(np.uint32) << np.uint32(8 * k)
        used |= (nbytes > k).astype(np.uint32) << np.uint32(8 * k)
    return packed, used


def varints(values: np.ndarray):
    """Varint-encodes each row of integers as a padded byte band.

    Args:
      values: int array [N, K] (int64 range; negatives are encoded as 10-byte
        two's complement, as protobuf does).
    Returns:
      (band, mask): band uint8 [N, K * width] with mask bool [N, K * width] or
      None when every byte is used; or, for values < 2**21, band uint32 [N, K]
      (4 little-endian bytes per value) with mask uint32 [N, K] (0x01 per used
      byte). Row i's encoding is the bytes of band[i] where mask[i] is set.
    """
    v = np.asarray(values)
    n = v.shape[0]
    if v.size == 0:
        return np.zeros((n, 0), np.uint8), None
    top, low = int(v.max()), int(v.min())
    if low >= 0 and top < 0x80:  # one byte each: masks, segment ids, labels, small ids
        return v.astype(np.uint8).reshape(n, -1), None
    if low >= 0 and top < _TABLE_LIMIT:
        # One gather per value from a table of encodings: ids, positions, lengths.
        size = 1 << max(14, top.bit_length())  # few distinct, cached tables
        packed, used = _varint_table(size)
        # 4 bytes per value (the unused ones masked): whole-word copies are
        # several times faster than 3-byte strided ones.
        return packed[v].reshape(n, -1), used[v].reshape(n, -1)
    # Larger or negative values: 64-bit arithmetic, 7 bits per byte.
    v = v.astype(np.int64).view(np.uint64)
    width = 10 if low < 0 else next(w for w in range(1, 11) if top < 1 << (7 * w))
    nbytes = np.ones(v.shape, np.int8)
    for k in range(1, width):
        nbytes += v >= np.uint64(1 << (7 * k))
    band = np.empty(v.shape + (width,), np.uint8)
    for k in range(width):
        byte = ((v >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        if k < width - 1:
            byte |= (nbytes > k + 1).view(np.uint8) << 7  # continuation bit
        band[..., k] = byte
    mask = np.arange(width, dtype=np.int8) < nbytes[..., None]
    return band.reshape(n, -1), mask.reshape(n, -1)


class _Parts:
    """N byte strings kept as a list of column bands until materialised once.

    A part is (band uint8 [N, W] or uint32 [N, W / 4] or constant uint8 [W],
    mask bool / uint32 of the band's shape or None, row lengths int64 [N] or the int W).
    Materialising writes the bands side by side into one [N, sum W] matrix and
    keeps the masked bytes, row-major, which is every row's concatenation in
    one boolean-index operation (or no copy at all when nothing is masked).
    """

    def __init__(self, n: int, parts=None):
        self.n = n
        self.parts = list(parts or [])

    def const(self, data: bytes) -> "_Parts":
        self.parts.append((np.frombuffer(data, np.uint8), None, len(data)))
        return self

    def band(self, band: np.ndarray, mask) -> "_Parts":
        # Row lengths computed once: nested length prefixes reuse them.
        if mask is None:
            row_lengths = band.shape[1] * band.itemsize
        else:  # a uint32 mask has a 0x01 byte per used byte
            row_lengths = mask.view(np.uint8).sum(axis=1, dtype=np.int64)
        self.parts.append((band, mask, row_lengths))
        return self

    def extend(self, other: "_Parts") -> "_Parts":
        self.parts.extend(other.parts)
        return self

    def lengths(self):
        """int64 [N], or an int when every row has the same length."""
        total = 0
        for _, _, row_lengths in self.parts:
            total = total + row_lengths
        return total

    def length_delimited(self, tag: int) -> "_Parts":
        """Returns tag + varint(len(row)) + row, for every row."""
        lengths = self.lengths()
        if isinstance(lengths, int):
            prefix = _Parts(self.n).const(bytes([tag]) + _varint_bytes(lengths))
        else:
            band, mask = varints(lengths[:, None])
            if mask is not None:
                used = mask.view(np.uint8)
                if (used == used[:1]).all():  # same width in every row: no mask
                    band, mask = np.ascontiguousarray(band.view(np.uint8)[:, used[0] > 0]), None
            prefix = _Parts(self.n).const(bytes([tag])).band(band, mask)
        return prefix.extend(self)

    def materialise(self):
        """Returns (blob uint8 [total], offsets int64 [N + 1]).

        Row i is blob[offsets[i]:offsets[i + 1]].
        """
        n = self.n
        # Merge runs of constants first: fewer, wider column writes.
        parts = []
        for band, mask, length in self.parts:
            if band.ndim == 1 and parts and parts[-1][0].ndim == 1:
                parts[-1] = (np.concatenate([parts[-1][0], band]), None, parts[-1][2] + length)
            else:
                parts.append((band, mask, length))
        widths = [band.shape[1] * band.itemsize if band.ndim > 1 else len(band)
                  for band, _, _ in parts]
        matrix = np.empty((n, sum(widths)), np.uint8)
        keep = None
        col = 0
        for (band, mask, _), w in zip(parts, widths):
            matrix[:, col:col + w].view(band.dtype)[...] = band
            if mask is not None:
                if keep is None:
                    keep = np.ones(matrix.shape, bool)
                keep[:, col:col + w].view(mask.dtype)[...] = mask
            col += w
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(np.broadcast_to(self.lengths(), (n,)), out=offsets[1:])
        if keep is None:
            return matrix.reshape(-1), offsets
        return matrix[keep], offsets


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _feature_entry(name: str, value_list: _Parts, list_tag: int) -> _Parts:
    """One Features.feature map entry: key=name, value=Feature{<list_tag>: value_list}."""
    feature = value_list.length_delimited(list_tag)
    key = name.encode()
    entry = _Parts(value_list.n).const(bytes([_TAG_1, len(key)]) + key)
    entry.extend(feature.length_delimited(_TAG_2))
    return entry.length_delimited(_TAG_1)


def _int64_feature(name: str, values: np.ndarray) -> _Parts:
    band, mask = varints(values)
    packed = _Parts(values.shape[0]).band(band, mask).length_delimited(_TAG_1)
    return _feature_entry(name, packed, _TAG_3)


def _float_feature(name: str, values: np.ndarray) -> _Parts:
    n, k = values.shape
    data = np.ascontiguousarray(values, dtype="<f4").view(np.uint8).reshape(n, 4 * k)
    packed = _Parts(n).band(data, None).length_delimited(_TAG_1)
    return _feature_entry(name, packed, _TAG_2)


def encode_examples(input_ids, input_mask, segment_ids, masked_lm_positions, masked_lm_ids,
                    masked_lm_weights, next_sentence_labels, as_array: bool = False):
    """Serialises N instances as tf.train.Example.

    Args:
      input_ids, input_mask, segment_ids: int [N, max_seq_length].
      masked_lm_positions, masked_lm_ids: int [N, max_predictions_per_seq].
      masked_lm_weights: float [N, max_predictions_per_seq] (stored as float32).
      next_sentence_labels: int [N] or [N, 1].
      as_array: return the blob as a uint8 array (saves a copy when the caller
        joins several blobs anyway).
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
    blob, offsets = body.length_delimited(_TAG_1).materialise()
    return (blob if as_array else blob.tobytes()), offsets
