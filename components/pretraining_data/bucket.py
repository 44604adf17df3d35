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
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from components.pretraining_data import _documents, instances, records
from components.pretraining_data import vocab as vocab_lib
from components.pretraining_data.options import PretrainingDataOptions

TRAIN, EVAL = "train", "eval"
SPLITS = (TRAIN, EVAL)
_TOKENIZE_BATCH_LINES = 16384
# ~1.5 MB of records per call: buffers this size are reused by malloc, where larger
# ones are fresh mappings whose page faults cost ~25% of the record builder's time.
_ENCODE_BATCH_INSTANCES = 2048


def document_hash(lines: Sequence[bytes], random_seed: int) -> bytes:
    """16 stable bytes per document (same text + seed -> same split and bucket); the
    hash the Beam job's C reader (_documents.c) computes for the same lines."""
    return _documents.document_hash(b"\n".join(lines), random_seed & (2**64 - 1))


def assign(doc_hash: bytes, eval_fraction: float, num_buckets: Dict[str, int]) -> Tuple[str, int]:
    """(split, bucket index) of a document from its hash: disjoint splits by document."""
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


def process_bucket(split: str, bucket_index: int, documents: Iterable[Tuple[bytes, List[bytes]]],
                   tokenizer, vocab: VocabInfo, options: PretrainingDataOptions,
                   num_pieces: int = 1):
    """Makes all instances of one bucket, as framed TFRecords in a seeded random order.

    Args:
      split: TRAIN or EVAL.
      bucket_index: the bucket's index within the split (seeds its generator).
      documents: (document_hash, lines) pairs, any order.
      tokenizer: tokenization.BertTokenizer.
      num_pieces: how many contiguous runs to cut the shuffled instances into
        (one per output shard the bucket feeds).
    Returns:
      (pieces, stats): pieces is a list of num_pieces lists of byte chunks; each
      piece's chunks, concatenated, are a valid TFRecord file.
    """
    docs = sorted(documents)  # hash order, the original's shuffle of documents
    stats = BucketStats(num_documents=len(docs))
    lines = [line for _, doc in docs for line in doc]
    stats.raw_bytes = sum(len(x) + 1 for x in lines)
    ids, lengths = [], []
    for start in range(0, len(lines), _TOKENIZE_BATCH_LINES):
        batch_ids, batch_lengths = tokenizer.tokenize(lines[start:start + _TOKENIZE_BATCH_LINES])
        ids.append(batch_ids)
        lengths.append(batch_lengths)
    flat = np.concatenate(ids) if ids else np.zeros(0, np.int32)
    sentence_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    tokenized = instances.pack_documents(flat, sentence_lengths, [len(d) for _, d in docs])
    stats.num_documents = tokenized.num_documents  # documents with any token left
    stats.num_sentences = tokenized.num_sentences
    stats.num_tokens = int(len(tokenized.tokens))
    pieces = [[] for _ in range(num_pieces)]
    if not tokenized.num_documents:
        return pieces, stats

    np_rng = np.random.default_rng([options.random_seed, SPLITS.index(split), bucket_index])
    spans = instances.create_instance_spans(
        tokenized, options.max_seq_length, options.short_seq_prob, options.dupe_factor, np_rng)
    stats.num_instances = len(spans)
    stats.num_random_next = int(spans[:, 4].sum())
    # The original shuffles all its instances before writing them; here a bucket's.
    spans = spans[np_rng.permutation(len(spans))]
    bounds = np.linspace(0, len(spans), num_pieces + 1).astype(np.int64)
    for piece, (lo, hi) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())):
        for start in range(lo, hi, _ENCODE_BATCH_INSTANCES):
            seed = int(np_rng.integers(0, 2**63))
            framed, num_masked = records.build_records(
                tokenized.tokens, spans[start:min(hi, start + _ENCODE_BATCH_INSTANCES)], seed,
                vocab, options)
            pieces[piece].append(framed)
            stats.num_masked += num_masked
    return pieces, stats
