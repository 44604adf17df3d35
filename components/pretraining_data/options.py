"""Options of the pretraining-data job: one frozen object, validated once, JSON round-trip.

Field names and defaults are those of google-research/bert's
create_pretraining_data.py flags, plus the two this project adds for sharded,
split output (`eval_fraction`, `num_shards`).
"""
import dataclasses
import json


@dataclasses.dataclass(frozen=True)
class PretrainingDataOptions:
    """How raw text becomes masked-LM / next-sentence instances.

    Attributes:
      max_seq_length: tokens per instance, [CLS] and both [SEP] included.
      max_predictions_per_seq: masked-LM slots per instance (padded with weight 0).
      masked_lm_prob: fraction of an instance's tokens to predict.
      dupe_factor: how many times each document is turned into instances,
        each time with different segment boundaries and masks.
      short_seq_prob: probability of a target length shorter than
        max_seq_length, so the model also sees short sequences.
      do_lower_case: lower-case and strip accents (uncased vocabulary).
      do_whole_word_mask: mask all WordPieces of a word together.
      random_seed: seeds every random choice; same seed + inputs + num_shards
        give byte-identical records.
      eval_fraction: fraction of DOCUMENTS (not instances) put in eval/, so no
        document is in both splits.
      num_shards: files per split (part-0000k-of-0000N.tfrecord).
      dynamic_masking: train/ holds unmasked instances, written once (dupe_factor
        must be 1), and the trainer masks them as it reads them, anew each epoch
        (RoBERTa's dynamic masking); eval/ stays masked once, so evaluation is fixed.
    """

    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    dupe_factor: int = 10
    short_seq_prob: float = 0.1
    do_lower_case: bool = True
    do_whole_word_mask: bool = False
    random_seed: int = 12345
    eval_fraction: float = 0.1
    num_shards: int = 4
    dynamic_masking: bool = False

    def validate(self) -> "PretrainingDataOptions":
        """Raises ValueError naming the first bad option; returns self for chaining."""
        _check_type(self, "max_seq_length", int)
        _check_type(self, "max_predictions_per_seq", int)
        _check_type(self, "dupe_factor", int)
        _check_type(self, "random_seed", int)
        _check_type(self, "num_shards", int)
        _check_type(self, "do_lower_case", bool)
        _check_type(self, "do_whole_word_mask", bool)
        _check_type(self, "dynamic_masking", bool)
        for name in ("masked_lm_prob", "short_seq_prob", "eval_fraction"):
            _check_type(self, name, (int, float))
        # 3 positions go to [CLS] [SEP] [SEP]; segments A and B need >= 1 token
        # each, and below 8 almost every instance would be truncated to noise.
        if self.max_seq_length < 8:
            raise ValueError(
                f"max_seq_length={self.max_seq_length} is too small: it must be >= 8 "
                "([CLS] + A + [SEP] + B + [SEP] need room); BERT uses 128 or 512.")
        if self.max_predictions_per_seq < 1:
            raise ValueError(
                f"max_predictions_per_seq={self.max_predictions_per_seq} must be >= 1.")
        max_maskable = self.max_seq_length - 3
        if self.max_predictions_per_seq > max_maskable:
            raise ValueError(
                f"max_predictions_per_seq={self.max_predictions_per_seq} is larger than "
                f"possible: an instance of max_seq_length={self.max_seq_length} has at most "
                f"{max_maskable} maskable tokens (all but [CLS], [SEP], [SEP]). Use about "
                f"max_seq_length * masked_lm_prob = "
                f"{round(self.max_seq_length * self.masked_lm_prob)}.")
        if not 0.0 < self.masked_lm_prob <= 1.0:
            raise ValueError(f"masked_lm_prob={self.masked_lm_prob} must be in (0, 1].")
        if self.dupe_factor < 1:
            raise ValueError(f"dupe_factor={self.dupe_factor} must be >= 1.")
        if self.dynamic_masking and self.dupe_factor != 1:
            raise ValueError(
                f"dupe_factor={self.dupe_factor} with dynamic_masking: the trainer draws new masks "
                "every epoch, so each instance is written once; set dupe_factor 1 (--dupe_factor 1).")
        if not 0.0 <= self.short_seq_prob <= 1.0:
            raise ValueError(f"short_seq_prob={self.short_seq_prob} must be in [0, 1].")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError(
                f"eval_fraction={self.eval_fraction} must be in [0, 1): it is the fraction "
                "of documents held out for eval/.")
        if self.num_shards < 1:
            raise ValueError(f"num_shards={self.num_shards} must be >= 1.")
        if self.random_seed < 0:
            raise ValueError(f"random_seed={self.random_seed} must be >= 0.")
        return self

    def to_json(self) -> str:
        """Sorted-key JSON, stable so it can be compared and stored in manifests.

        dynamic_masking appears only when on, so that the options (and the fingerprints of
        records made with them) read as they did before the option existed."""
        values = dataclasses.asdict(self)
        if not values["dynamic_masking"]:
            del values["dynamic_masking"]
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> "PretrainingDataOptions":
        """Parses `to_json` output (missing keys take defaults); unknown keys are refused."""
        try:
            raw = json.loads(s) if s.strip() else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"PretrainingDataOptions JSON is not valid JSON: {e}") from e
        if not isinstance(raw, dict):
            raise ValueError("PretrainingDataOptions JSON must be an object, got "
                             f"{type(raw).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"Unknown PretrainingDataOptions field(s) {unknown}; "
                             f"known fields are {sorted(known)}.")
        return cls(**raw).validate()


def _check_type(options, name, types):
    value = getattr(options, name)
    # bool is an int subclass: refuse True where a count is expected, and 1 where a flag is.
    is_bool = isinstance(value, bool)
    wants_bool = types is bool
    if not isinstance(value, types) or (is_bool and not wants_bool):
        raise ValueError(f"{name}={value!r} has type {type(value).__name__}; expected "
                         f"{getattr(types, '__name__', 'a number')}.")
