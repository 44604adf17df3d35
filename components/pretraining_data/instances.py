"""Cuts tokenised documents into [CLS] A [SEP] B [SEP] instances, as BERT's create_instances_from_document.

A segment is a span [start, end) into one flat token array of the bucket
instead of a list of token strings; the original's loop runs in C over those
arrays (_instances.c), and records.py then builds, masks and serialises the
instances (also in C).
"""
import dataclasses
import random
from typing import List, Union

import numpy as np

from components.pretraining_data import _instances


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


def create_instance_spans(docs: TokenizedDocuments, max_seq_length: int, short_seq_prob: float,
                          dupe_factor: int,
                          rng: Union[np.random.Generator, random.Random]) -> np.ndarray:
    """Runs BERT's create_instances_from_document over all documents, dupe_factor times.

    The loop is the original's, in C (_instances.c, which lists the one
    difference: the random next segment's document is drawn uniformly among
    the others, where the original tries 10 times to draw another one). The
    random next segment comes from another document of the same list (the
    bucket), as the original draws it from all documents; a one-document list
    uses itself, as the original ends up doing.

    Args:
      rng: numpy generator or random.Random; one 63-bit seed is drawn from it.
    Returns:
      int64 [num_instances, 5]: a_start, a_end, b_start, b_end (offsets into
      docs.tokens, after truncation) and is_random_next (1 = B is random), in
      the original's order: by copy, then document, then position in the document.
    """
    seed = rng.getrandbits(63) if isinstance(rng, random.Random) else int(rng.integers(0, 2**63))
    raw = _instances.create_instance_spans(
        np.ascontiguousarray(docs.sentence_bounds, np.int64),
        np.ascontiguousarray(docs.document_starts, np.int64),
        int(max_seq_length), float(short_seq_prob), int(dupe_factor), seed)
    return np.frombuffer(raw, np.int64).reshape(-1, 5)


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
