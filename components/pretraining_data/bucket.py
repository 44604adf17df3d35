"""Turns one bucket of documents into serialised instances, ready to be sharded.

Why buckets: BERT draws a "random next sentence" from any other document, which
needs a pool of documents in one place. The Beam job hashes every document
into a bucket of ~1 MB of text (a few hundred to a few thousand documents), and
this module makes all instances of a bucket: the bucket is the random-document
pool, the tokeniser batch and the unit of parallelism. The bucket's random
generator is seeded from (random_seed, split, bucket index) and its documents
are sorted by hash, so the output does not depend on the order Beam delivers
them in, nor on the number of workers.
"""
import dataclasses
from typing import Dict, Iterable, Sequence, Tuple

import numpy as np

from components.pretraining_data import _documents, instances, records
from components.pretraining_data import vocab as vocab_lib
from components.pretraining_data.options import PretrainingDataOptions

TRAIN, EVAL = "train", "eval"
SPLITS = (TRAIN, EVAL)
_TOKENIZE_BATCH_BYTES = 4 << 20
# ~1.5 MB of records per call: buffers this size are reused by malloc, where larger
# ones are fresh mappings whose page faults cost ~25% of the record builder's time.
_ENCODE_BATCH_INSTANCES = 2048


def document_hash(lines: Sequence[bytes], random_seed: int) -> bytes:
    """16 stable bytes per document (same text + seed -> same split and bucket); the
    hash the Beam job's C reader (_documents.c) computes for the same lines."""
    return _documents.document_hash(b"\n".join(lines), random_seed & (2**64 - 1))


def assign(doc_hash: bytes, eval_fraction: float, num_buckets: Dict[str, int]) -> Tuple[str, int]:
    """(split, bucket index) of a document from its hash: disjoint splits by document.

    The Beam job does this in C (_documents.c); this is its Python statement, which
    tests/test_pretraining_text_reader.py checks the C code against.
    """
    u = int.from_bytes(doc_hash[:8], "little") / 2.0**64
    split = EVAL if u < eval_fraction else TRAIN
    return split, int.from_bytes(doc_hash[8:], "little") % num_buckets[split]


@dataclasses.dataclass
class BucketStats:
    num_documents: int = 0
    num_sentences: int = 0
    num_tokens: int = 0
    num_instances: int = 0
    num_random_next: int = 0
    num_masked: int = 0
    raw_bytes: int = 0


class VocabInfo:
    """Ids the instance builder needs from a vocabulary list."""

    def __init__(self, tokens: Sequence[str]):
        index = {t: i for i, t in enumerate(tokens)}
        self.size = len(tokens)
        self.cls_id = index[vocab_lib.CLS]
        self.sep_id = index[vocab_lib.SEP]
        self.mask_id = index[vocab_lib.MASK]
        self.is_continuation = np.array([t.startswith("##") for t in tokens], bool)


@dataclasses.dataclass
class InstancePiece:
    """Instances of one bucket bound for one shard, before serialisation.

    ~10x smaller than their records, so this is what crosses from the bucket
    stage to the shard writers, which build the records (write_records) straight
    into the shard file.

    Attributes:
      tokens: int32 [total_tokens], the bucket's tokens.
      spans: int64 [n, 5], instance spans into tokens (instances.create_instance_spans),
        in their final (shuffled) order.
      seed: seeds the masking of these instances (0 <= seed < 2**63).
    """

    tokens: np.ndarray
    spans: np.ndarray
    seed: int

    def to_bytes(self) -> bytes:
        header = np.array([len(self.tokens), len(self.spans), self.seed], "<i8").tobytes()
        return (header + np.ascontiguousarray(self.tokens, "<i4").tobytes()
                + np.ascontiguousarray(self.spans, "<i8").tobytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> "InstancePiece":
        num_tokens, num_spans, seed = (int(x) for x in np.frombuffer(data, "<i8", 3))
        tokens = np.frombuffer(data, "<i4", num_tokens, offset=24)
        spans = np.frombuffer(data, "<i8", 5 * num_spans, offset=24 + 4 * num_tokens)
        return cls(tokens, spans.reshape(num_spans, 5), seed)


def process_bucket(split: str, bucket_index: int, documents: Iterable[Tuple[bytes, bytes]],
                   tokenizer, options: PretrainingDataOptions, num_pieces: int = 1):
    """Makes all instances of one bucket, in a seeded random order, cut into pieces.

    Takes the documents as Python objects: the plain statement of the bucket's work,
    which tests check the job's path (process_spill_blocks, documents joined in C)
    against; the Beam job itself calls process_spill_blocks.

    Args:
      split: TRAIN or EVAL.
      bucket_index: the bucket's index within the split (seeds its generator).
      documents: (document_hash, text) pairs, any order; text is the document's
        lines joined by b"\\n" (the spill format's).
      tokenizer: tokenization.BertTokenizer.
      num_pieces: how many contiguous runs to cut the shuffled instances into
        (one per output shard the bucket feeds).
    Returns:
      (pieces, stats): num_pieces InstancePieces (None for an empty one) and the
      bucket's BucketStats (num_masked is counted when the records are built).
    """
    texts = [text for _, text in sorted(documents)]  # hash order, the original's shuffle
    starts = np.cumsum([0] + [len(text) + 1 for text in texts], dtype=np.int64)
    lines = np.array([text.count(b"\n") + 1 for text in texts], np.int64)
    return _process_joined(split, bucket_index, b"\n".join(texts), starts, lines, tokenizer,
                           options, num_pieces)


def process_spill_blocks(split: str, bucket_index: int, blocks: Sequence[bytes], tokenizer,
                         options: PretrainingDataOptions, num_pieces: int = 1):
    """process_bucket on the bucket's spill blocks (hash16 | uint32 length | text, as
    _documents.c writes them): same result, but the documents are sorted and joined
    in C without the GIL (_documents.join_documents) instead of one Python object each."""
    text, starts, lines = _documents.join_documents(blocks)
    return _process_joined(split, bucket_index, text, np.frombuffer(starts, np.int64),
                           np.frombuffer(lines, np.int64), tokenizer, options, num_pieces)


def _process_joined(split, bucket_index, text: bytes, starts: np.ndarray, lines: np.ndarray,
                    tokenizer, options, num_pieces):
    """process_bucket's work on the bucket's documents, sorted by hash and joined.

    Args:
      text: the D documents' texts joined by b"\\n".
      starts: int64 [D + 1]; document i is text[starts[i]:starts[i + 1] - 1].
      lines: int64 [D], lines per document.
    """
    num_docs = len(lines)
    stats = BucketStats(num_documents=num_docs)
    stats.raw_bytes = len(text) + 1 if num_docs else 0
    ids, lengths = [], []
    first = 0
    while first < num_docs:  # ~4 MB of text per tokenizer call, whole documents
        end = int(np.searchsorted(starts, starts[first] + _TOKENIZE_BATCH_BYTES))
        end = min(max(end, first + 1), num_docs)
        batch = text if (first, end) == (0, num_docs) else text[starts[first]:starts[end] - 1]
        batch_ids, batch_lengths = tokenizer.tokenize_text(batch)
        ids.append(batch_ids)
        lengths.append(batch_lengths)
        first = end
    flat = np.concatenate(ids) if ids else np.zeros(0, np.int32)
    sentence_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    tokenized = instances.pack_documents(flat, sentence_lengths, lines)
    stats.num_documents = tokenized.num_documents  # documents with any token left
    stats.num_sentences = tokenized.num_sentences
    stats.num_tokens = int(len(tokenized.tokens))
    if not tokenized.num_documents:
        return [None] * num_pieces, stats

    np_rng = np.random.default_rng([options.random_seed, SPLITS.index(split), bucket_index])
    spans = instances.create_instance_spans(
        tokenized, options.max_seq_length, options.short_seq_prob, options.dupe_factor, np_rng)
    stats.num_instances = len(spans)
    stats.num_random_next = int(spans[:, 4].sum())
    # The original shuffles all its instances before writing them; here a bucket's.
    spans = spans[np_rng.permutation(len(spans))]
    bounds = np.linspace(0, len(spans), num_pieces + 1).astype(np.int64)
    pieces = []
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        seed = int(np_rng.integers(0, 2**63))
        pieces.append(InstancePiece(tokenized.tokens, spans[lo:hi], seed) if hi > lo else None)
    return pieces, stats


def write_records(piece: InstancePiece, vocab: VocabInfo, options: PretrainingDataOptions,
                  write, masked: bool = True) -> int:
    """Builds the piece's records (masking, tf.train.Example, TFRecord framing) and passes
    them to write(bytes) in order, ~1.5 MB at a time. Returns the number of masked tokens.
    masked=False: unmasked instances, for dynamic masking (records.build_records)."""
    num_masked = 0
    for batch, start in enumerate(range(0, len(piece.spans), _ENCODE_BATCH_INSTANCES)):
        # A seed per batch, fixed by the piece's seed and the batch's place.
        seed = (piece.seed + batch * 0x9E3779B97F4A7C15) % 2**64
        framed, masked = records.build_records(
            piece.tokens, piece.spans[start:start + _ENCODE_BATCH_INSTANCES], seed, vocab,
            options, masked)
        write(framed)
        num_masked += masked
    return num_masked
