"""Instance spans -> framed TFRecords of tf.train.Example, with BERT's masked-LM rule.

The work is done by the C extension `_records` (see _records.c), one pass per
instance: it builds [CLS] A [SEP] B [SEP] + padding (segment 0 through the first
[SEP], 1 after), chooses the predictions as google-research/bert's
create_masked_lm_predictions (candidates: all tokens but [CLS]/[SEP]; with
whole-word masking a "##" piece joins the previous candidate's group; groups in
random order, taken while the count stays <= min(max_predictions_per_seq,
max(1, round(length * masked_lm_prob))); each chosen token 80% [MASK], 10% kept,
10% a uniformly random id), serialises the Example as protobuf's deterministic
serialisation does, and frames it as TFRecordWriter does.
"""
import numpy as np

from components.pretraining_data import _records
from components.pretraining_data.options import PretrainingDataOptions


def build_records(tokens: np.ndarray, spans: np.ndarray, seed: int, vocab,
                  options: PretrainingDataOptions, masked: bool = True):
    """Serialises instances as back-to-back TFRecords.

    Args:
      tokens: int32 [total_tokens], the bucket's tokens (TokenizedDocuments.tokens).
      spans: int64 [N, 5] (a_start, a_end, b_start, b_end, is_random_next), from
        instances.create_instance_spans; records come out in this order.
      seed: 0 <= seed < 2**64; instance i's random choices depend on (seed, i) only.
      vocab: bucket.VocabInfo (size, [CLS]/[SEP]/[MASK] ids, "##" pieces).
      options: max_seq_length, max_predictions_per_seq, masked_lm_prob, do_whole_word_mask.
      masked: False writes unmasked instances for dynamic masking (schema.UNMASKED_FEATURE_NAMES:
        input_ids as they are, no masked_lm_* features; the trainer masks as it reads).
    Returns:
      (framed bytes: a valid TFRecord file's content, number of masked positions).
    """
    return _records.build_records(
        np.ascontiguousarray(tokens, np.int32), np.ascontiguousarray(spans, np.int64),
        int(seed), options.max_seq_length, options.max_predictions_per_seq,
        float(options.masked_lm_prob), vocab.size, vocab.cls_id, vocab.sep_id, vocab.mask_id,
        np.ascontiguousarray(vocab.is_continuation, np.uint8) if options.do_whole_word_mask
        else None, not masked)


def masked_crc32c(data: bytes, portable: bool = False) -> int:
    """TFRecord's masked CRC32C (for checks and tests); portable=True: the table code,
    which the C code uses where the CPU has no SSE4.2 crc32 instruction."""
    return _records.masked_crc32c(data, portable)
