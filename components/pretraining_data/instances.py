"""Cuts tokenised documents into [CLS] A [SEP] B [SEP] instances, as BERT's create_instances_from_document.

The control flow (target length, where A ends, random or actual next, putting
unused sentences back, truncating the longer segment one token at a time from a
random end) is google-research/bert's. Only the representation differs, for
speed: a segment is a span [start, end) into one flat token array of the
bucket instead of a list of token strings, and all (copy, document) walks of a
bucket advance together, one chunk per step, as numpy operations over the
walks still running. So the Python cost is per step (the most chunks any
document makes), not per instance; records.py then builds, masks and
serialises the instances in C.
"""
import dataclasses
import random
from typing import List, Union

import numpy as np


@dataclasses.dataclass
class TokenizedDocuments:
    """The documents of one bucket.

    Attributes:
      tokens: int32 [total_tokens], every sentence of every document, concatenated.
      sentence_bounds: int64 [num_sentences + 1], sentence s is
        tokens[sentence_bounds[s]:sentence_bounds[s + 1]] (>= 1 token).
      document_starts: int64 [num_documents + 1], document d is sentences
        [document_starts[d], document_starts[d + 1]) (>= 1 sentence).
    """

    tokens: np.ndarray
    sentence_bounds: np.ndarray
    document_starts: np.ndarray

    @property
    def num_documents(self) -> int:
        return len(self.document_starts) - 1

    @property
    def num_sentences(self) -> int:
        return int(self.document_starts[-1])

    @property
    def sentence_offsets(self) -> List[List[int]]:
        """Per document, its sentence boundaries as offsets into `tokens` (len = sentences + 1)."""
        bounds = self.sentence_bounds.tolist()
        starts = self.document_starts.tolist()
        return [bounds[s:e + 1] for s, e in zip(starts[:-1], starts[1:])]


def truncated_lengths(len_a, len_b, max_num_tokens: int):
    """Closed form of the original truncate_seq_pair's lengths (scalars or int arrays).

    The original removes one token at a time from the longer segment (B on a
    tie) until the pair fits, so first the longer one shrinks to the other's
    length, then they alternate starting with B.
    """
    len_a, len_b = np.asarray(len_a, np.int64), np.asarray(len_b, np.int64)
    excess = np.maximum(len_a + len_b - max_num_tokens, 0)
    shrink_a = np.minimum(excess, np.maximum(len_a - len_b, 0))  # A longer: A shrinks first
    shrink_b = np.minimum(excess, np.maximum(len_b - len_a, 0))
    rest = excess - shrink_a - shrink_b  # now equal lengths: B, A, B, A, ...
    new_a = len_a - shrink_a - rest // 2
    new_b = len_b - shrink_b - (rest + 1) // 2
    if new_a.ndim == 0:
        return int(new_a), int(new_b)
    return new_a, new_b


def create_instance_spans(docs: TokenizedDocuments, max_seq_length: int, short_seq_prob: float,
                          dupe_factor: int,
                          rng: Union[np.random.Generator, random.Random]) -> np.ndarray:
    """Runs BERT's create_instances_from_document over all documents, dupe_factor times.

    The random next segment comes from another document of the same list (the
    bucket), as the original draws it from all documents. (The original tries
    10 times to draw another document; here it is drawn uniformly among the
    others, the same up to a 1/num_docs**10 chance. A one-document bucket uses itself.)

    Args:
      rng: numpy generator (a random.Random seeds one).
    Returns:
      int64 [num_instances, 5]: a_start, a_end, b_start, b_end (offsets into
      docs.tokens, after truncation) and is_random_next (1 = B is random), in
      the original's order: by copy, then document, then position in the document.
    """
    if isinstance(rng, random.Random):
        rng = np.random.default_rng(rng.getrandbits(128))
    num_docs = docs.num_documents
    if num_docs == 0 or dupe_factor == 0:
        return np.zeros((0, 5), np.int64)
    bounds = np.asarray(docs.sentence_bounds, np.int64)
    doc_first = np.asarray(docs.document_starts, np.int64)
    doc_sentences = np.diff(doc_first)
    max_num_tokens = max_seq_length - 3  # [CLS], [SEP], [SEP]

    # One walk per (copy, document); `order` = copy * num_docs + document.
    walk_doc = np.tile(np.arange(num_docs, dtype=np.int64), dupe_factor)
    walk_order = np.arange(len(walk_doc), dtype=np.int64)
    pos = doc_first[walk_doc]            # first sentence of the next chunk (global index)
    last = doc_first[walk_doc + 1] - 1   # the document's last sentence
    target = np.full(len(walk_doc), max_num_tokens, np.int64)
    short = rng.random(len(walk_doc)) < short_seq_prob
    target[short] = rng.integers(2, max_num_tokens + 1, int(short.sum()))

    out, order_copy_doc, order_step = [], [], []
    step = 0
    while len(pos):
        m = len(pos)
        # The chunk: sentences [pos, i], i the first with length >= target (or the last).
        i = np.searchsorted(bounds, bounds[pos] + target, side="left") - 1
        np.clip(i, pos, last, out=i)
        chunk_len = i + 1 - pos
        a_end = rng.integers(1, np.maximum(chunk_len, 2))  # 1 if one sentence, else [1, len-1]
        a0, a1 = bounds[pos], bounds[pos + a_end]
        is_random = (chunk_len == 1) | (rng.random(m) < 0.5)
        # Actual next: B is the rest of the chunk.
        b0, b1 = a1.copy(), bounds[i + 1]
        nxt = i + 1
        r = np.flatnonzero(is_random)
        if len(r):
            own = walk_doc[r]
            if num_docs > 1:
                other = rng.integers(0, num_docs - 1, len(r))
                other += other >= own
            else:
                other = own
            start = doc_first[other] + (rng.random(len(r)) * doc_sentences[other]).astype(np.int64)
            target_b = target[r] - (a1[r] - a0[r])
            # Sentences from `start` until B reaches target_b (at least one).
            stop = np.searchsorted(bounds, bounds[start] + target_b, side="left")
            np.clip(stop, start + 1, doc_first[other + 1], out=stop)
            b0[r], b1[r] = bounds[start], bounds[stop]
            nxt[r] = pos[r] + a_end[r]  # put the unused sentences back
        len_a, len_b = a1 - a0, b1 - b0
        new_a, new_b = truncated_lengths(len_a, len_b, max_num_tokens)
        # Each removed token came from the front with probability 1/2.
        cut_a, cut_b = len_a - new_a, len_b - new_b
        front_a = rng.binomial(cut_a, 0.5)
        front_b = rng.binomial(cut_b, 0.5)
        out.append(np.stack([a0 + front_a, a1 - (cut_a - front_a), b0 + front_b,
                             b1 - (cut_b - front_b), is_random.astype(np.int64)], axis=1))
        order_copy_doc.append(walk_order)
        order_step.append(np.full(m, step, np.int64))
        alive = nxt <= last
        pos, last, target = nxt[alive], last[alive], target[alive]
        walk_doc, walk_order = walk_doc[alive], walk_order[alive]
        step += 1
    spans = np.concatenate(out)
    # Back to the original's loop order: copy, document, chunk.
    return spans[np.lexsort((np.concatenate(order_step), np.concatenate(order_copy_doc)))]


def pack_documents(flat_ids: np.ndarray, sentence_lengths: np.ndarray,
                   sentences_per_document: np.ndarray) -> TokenizedDocuments:
    """Packs tokenised sentences into TokenizedDocuments.

    Args:
      flat_ids: int [total_tokens], all sentences' ids back to back.
      sentence_lengths: int [num_sentences], tokens per sentence (may be 0).
      sentences_per_document: int [num_documents], lines per document (sum = num_sentences).
    Empty sentences and documents left empty are dropped, as the original drops
    lines that tokenise to nothing and empty documents.
    """
    lengths = np.asarray(sentence_lengths, dtype=np.int64)
    per_doc = np.asarray(sentences_per_document, dtype=np.int64)
    if lengths.sum() != len(flat_ids) or per_doc.sum() != len(lengths):
        raise ValueError(f"pack_documents: inconsistent sizes ({len(flat_ids)} ids, "
                         f"{lengths.sum()} by sentence, {len(lengths)} sentences, "
                         f"{per_doc.sum()} by document).")
    keep = lengths > 0
    # Dropped sentences are empty, so the kept ones still tile the token array.
    bounds = np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64)
    kept_per_doc = np.bincount(np.repeat(np.arange(len(per_doc)), per_doc)[keep],
                               minlength=len(per_doc))
    kept_per_doc = kept_per_doc[kept_per_doc > 0]
    starts = np.concatenate([[0], np.cumsum(kept_per_doc)]).astype(np.int64)
    return TokenizedDocuments(np.asarray(flat_ids, dtype=np.int32), bounds, starts)
