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
import hashlib
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

from components.pretraining_data import example_encoder, instances, masking
from components.pretraining_data import vocab as vocab_lib
from components.pretraining_data.options import PretrainingDataOptions

TRAIN, EVAL = "train", "eval"
SPLITS = (TRAIN, EVAL)
_TOKENIZE_BATCH_LINES = 16384
_ENCODE_BATCH_INSTANCES = 8192


def document_hash(lines: Sequence[bytes], random_seed: int) -> bytes:
    """16 stable bytes per document (same text + seed -> same split and bucket)."""
    h = hashlib.blake2b(digest_size=16, person=b"bert-pretrain")
    h.update(random_seed.to_bytes(8, "little", signed=False))
    h.update(b"\n".join(lines))
    return h.digest()


def assign(doc_hash: bytes, eval_fraction: float, num_buckets: Dict[str, int]) -> Tuple[str, int]:
    """(split, bucket index) of a document from its hash: disjoint splits by document."""
    u = int.from_bytes(doc_hash[:8], "little") / 2.0**64
    split = EVAL if u < eval_fraction else TRAIN
    return split, int.from_bytes(doc_hash[8:], "little") % num_buckets[split]


@dataclasses.dataclass
class ShardPiece:
    """The records of one bucket that go to one shard.

    Attributes:
      sort_keys: uint64 [n] random keys; a shard is written in key order (a global shuffle).
      uids: int64 [n] tie-breakers, unique per (bucket, instance).
      offsets: int64 [n + 1] into blob.
      blob: the serialised tf.train.Examples back to back.
    """

    sort_keys: np.ndarray
    uids: np.ndarray
    offsets: np.ndarray
    blob: bytes


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
                   tokenizer, vocab: VocabInfo, options: PretrainingDataOptions):
    """Makes all instances of one bucket.

    Args:
      split: TRAIN or EVAL.
      bucket_index: the bucket's index within the split (seeds its generator).
      documents: (document_hash, lines) pairs, any order.
      tokenizer: tokenization.BertTokenizer.
    Returns:
      ({shard index: ShardPiece}, BucketStats).
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
    if not tokenized.num_documents:
        return {}, stats

    seed = [options.random_seed, SPLITS.index(split), bucket_index]
    np_rng = np.random.default_rng(seed)
    spans = instances.create_instance_spans(
        tokenized, options.max_seq_length, options.short_seq_prob, options.dupe_factor, np_rng)
    n = len(spans)
    stats.num_instances = n
    stats.num_random_next = int(spans[:, 4].sum())
    sort_keys = np_rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    shards = np_rng.integers(0, options.num_shards, n)
    uids = (np.int64(bucket_index) << 32) + np.arange(n, dtype=np.int64)
    # Instances are encoded grouped by shard, so each shard's records are one slice.
    order = np.argsort(shards, kind="stable")
    spans, sort_keys, uids = spans[order], sort_keys[order], uids[order]
    bounds = np.searchsorted(shards[order], np.arange(options.num_shards + 1))

    pieces = {}
    for shard in range(options.num_shards):
        lo, hi = int(bounds[shard]), int(bounds[shard + 1])
        if lo == hi:
            continue
        blobs, offsets = [], [np.zeros(1, np.int64)]
        for start in range(lo, hi, _ENCODE_BATCH_INSTANCES):
            batch = spans[start:min(hi, start + _ENCODE_BATCH_INSTANCES)]
            blob, off = _encode(tokenized.tokens, batch, np_rng, vocab, options, stats)
            offsets.append(off[1:] + offsets[-1][-1])
            blobs.append(blob)
        pieces[shard] = ShardPiece(sort_keys[lo:hi], uids[lo:hi], np.concatenate(offsets),
                                   b"".join(blobs))
    return pieces, stats


def _encode(tokens, spans, rng, vocab: VocabInfo, options: PretrainingDataOptions,
            stats: BucketStats):
    """Assembles, masks and serialises a batch of spans: (blob, offsets int64 [N + 1])."""
    input_ids, segment_ids, seq_lengths = instances.assemble(
        tokens, spans, options.max_seq_length, vocab.cls_id, vocab.sep_id)
    masked = masking.mask_batch(
        input_ids, seq_lengths, rng,
        masked_lm_prob=options.masked_lm_prob,
        max_predictions_per_seq=options.max_predictions_per_seq,
        vocab_size=vocab.size, mask_id=vocab.mask_id, cls_id=vocab.cls_id,
        sep_id=vocab.sep_id,
        is_continuation=vocab.is_continuation if options.do_whole_word_mask else None)
    stats.num_masked += int(masked.masked_lm_weights.sum())
    input_mask = (np.arange(options.max_seq_length)[None, :] < seq_lengths[:, None])
    return example_encoder.encode_examples(
        masked.input_ids, input_mask.view(np.int8), segment_ids,
        masked.masked_lm_positions, masked.masked_lm_ids, masked.masked_lm_weights,
        spans[:, 4], as_array=True)
