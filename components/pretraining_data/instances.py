"""Cuts tokenised documents into [CLS] A [SEP] B [SEP] instances, as BERT's create_instances_from_document.

The control flow (target length, where A ends, random or actual next, putting
unused sentences back, truncating the longer segment one token at a time from a
random end) is google-research/bert's, line for line. Only the representation
differs, for speed: a segment is a span [start, end) into one flat token array
of the bucket instead of a list of token strings, so no tokens are copied in
Python; `assemble` builds all instances of a bucket with a few numpy gathers.
"""
import bisect
import dataclasses
import random
from typing import List

import numpy as np


@dataclasses.dataclass
class TokenizedDocuments:
    """The documents of one bucket.

    Attributes:
      tokens: int32 [total_tokens], every sentence of every document, concatenated.
      sentence_offsets: per document, a Python list of absolute offsets into
        `tokens`, one per sentence boundary (len = sentences + 1). Documents have
        >= 1 sentence and sentences >= 1 token.
    """

    tokens: np.ndarray
    sentence_offsets: List[List[int]]


def truncated_lengths(len_a: int, len_b: int, max_num_tokens: int):
    """Closed form of the original truncate_seq_pair's lengths.

    The original removes one token at a time from the longer segment (B on a
    tie) until the pair fits, so first the longer one shrinks to the other's
    length, then they alternate starting with B.
    """
    excess = len_a + len_b - max_num_tokens
    if excess <= 0:
        return len_a, len_b
    if len_a > len_b:
        take = min(excess, len_a - len_b)
        len_a -= take
        excess -= take
    elif len_b > len_a:
        take = min(excess, len_b - len_a)
        len_b -= take
        excess -= take
    len_b -= (excess + 1) // 2
    len_a -= excess // 2
    return len_a, len_b


def create_instance_spans(docs: TokenizedDocuments, max_seq_length: int, short_seq_prob: float,
                          dupe_factor: int, rng: random.Random) -> np.ndarray:
    """Runs BERT's create_instances_from_document over all documents, dupe_factor times.

    The random next segment comes from another document of the same list (the
    bucket), as the original draws it from all documents.

    Returns:
      int64 [num_instances, 5]: a_start, a_end, b_start, b_end (offsets into
      docs.tokens, after truncation) and is_random_next (1 = B is random).
    """
    offsets = docs.sentence_offsets
    num_docs = len(offsets)
    max_num_tokens = max_seq_length - 3  # [CLS], [SEP], [SEP]
    out: List[int] = []
    append = out.extend
    rand = rng.random
    getrandbits = rng.getrandbits

    def randint(a, b):
        # Uniform on [a, b] like random.randint, ~10x cheaper (bias < 2**-40).
        return a + int(rand() * (b - a + 1))

    for _ in range(dupe_factor):
        for doc_index in range(num_docs):
            off = offsets[doc_index]
            num_sentences = len(off) - 1
            target_seq_length = max_num_tokens
            if rand() < short_seq_prob:
                target_seq_length = randint(2, max_num_tokens)
            chunk_start = 0  # current_chunk = sentences [chunk_start, i]
            current_length = 0
            i = 0
            while i < num_sentences:
                current_length += off[i + 1] - off[i]
                if i == num_sentences - 1 or current_length >= target_seq_length:
                    chunk_len = i + 1 - chunk_start
                    a_end = 1 if chunk_len < 2 else randint(1, chunk_len - 1)
                    a0, a1 = off[chunk_start], off[chunk_start + a_end]
                    if chunk_len == 1 or rand() < 0.5:
                        is_random_next = 1
                        target_b_length = target_seq_length - (a1 - a0)
                        # As the original: try 10 times to avoid the same document;
                        # only a one-document bucket falls back to itself.
                        for _ in range(10):
                            random_doc = randint(0, num_docs - 1)
                            if random_doc != doc_index:
                                break
                        roff = offsets[random_doc]
                        random_start = randint(0, len(roff) - 2)
                        # Sentences from random_start until B reaches target_b_length.
                        stop = bisect.bisect_left(roff, roff[random_start] + target_b_length,
                                                  random_start + 1)
                        b0, b1 = roff[random_start], roff[min(stop, len(roff) - 1)]
                        i -= chunk_len - a_end  # put the unused sentences back
                    else:
                        is_random_next = 0
                        b0, b1 = a1, off[i + 1]
                    len_a, len_b = a1 - a0, b1 - b0
                    new_a, new_b = truncated_lengths(len_a, len_b, max_num_tokens)
                    if new_a != len_a:
                        # Each removed token came from the front with probability 1/2.
                        cut = len_a - new_a
                        front = getrandbits(cut).bit_count()
                        a0 += front
                        a1 -= cut - front
                    if new_b != len_b:
                        cut = len_b - new_b
                        front = getrandbits(cut).bit_count()
                        b0 += front
                        b1 -= cut - front
                    append((a0, a1, b0, b1, is_random_next))
                    chunk_start = i + 1
                    current_length = 0
                i += 1
    return np.asarray(out, dtype=np.int64).reshape(-1, 5)


def assemble(tokens: np.ndarray, spans: np.ndarray, max_seq_length: int, cls_id: int,
             sep_id: int):
    """Builds padded instances from spans.

    Args:
      tokens: int32 [total_tokens] (TokenizedDocuments.tokens).
      spans: int64 [N, 5] from create_instance_spans.
    Returns:
      input_ids int32 [N, max_seq_length] (0-padded, as the original pads with
      id 0), segment_ids int8 [N, max_seq_length], lengths int64 [N].
    """
    s = spans[:, :4].astype(np.int32)
    a0, a1, b0, b1 = (s[:, k:k + 1] for k in range(4))
    len_a, len_b = a1 - a0, b1 - b0
    j = np.arange(max_seq_length, dtype=np.int32)[None, :]
    b_first = len_a + 2  # [CLS] A [SEP] B
    in_a = (j >= 1) & (j <= len_a)
    in_b = (j >= b_first) & (j < b_first + len_b)
    src = np.where(in_a, a0 - 1 + j, b0 - b_first + j)
    ids = tokens[np.where(in_a | in_b, src, 0)] if len(tokens) else np.zeros(src.shape, np.int32)
    ids[~(in_a | in_b)] = 0
    rows = np.arange(len(spans))
    ids[:, 0] = cls_id
    ids[rows, len_a[:, 0] + 1] = sep_id
    ids[rows, (b_first + len_b)[:, 0]] = sep_id
    lengths = (len_a + len_b + 3)[:, 0].astype(np.int64)
    segment_ids = ((j >= b_first) & (j < lengths[:, None])).astype(np.int8)
    return ids, segment_ids, lengths


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
    ends = np.cumsum(lengths)
    keep = lengths > 0
    kept_starts = (ends - lengths)[keep].tolist()
    kept_ends = ends[keep].tolist()
    doc_of_sentence = np.repeat(np.arange(len(per_doc)), per_doc)[keep]
    offsets, c = [], 0
    for n in np.bincount(doc_of_sentence, minlength=len(per_doc)).tolist():
        if n:
            offsets.append([kept_starts[c]] + kept_ends[c:c + n])
            c += n
    return TokenizedDocuments(np.asarray(flat_ids, dtype=np.int32), offsets)
