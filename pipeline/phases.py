"""Two-phase pretraining: phase 2's settings, and the data and training config they give.

google-research/bert's README pretrains 90% of the steps at sequence length 128 and the
last 10% at 512, because attention is quadratic in the length; NVIDIA's recipe does the
same with 20 then 80 masked-LM predictions per sequence. Phase 1 is the pipeline's usual
`data` + `training` config; `Phase2Config` names what phase 2 changes, and everything
else (corpus, vocabulary, masking rule, seeds, eval settings, optimizer type) is phase 1's.

Phase 2 warm-starts ALL of phase 1's weights with a FRESH optimizer and its own warm-up
and linear decay, as google-research/bert's phase 2 does (run_pretraining.py with
--init_checkpoint restores variables only) and NVIDIA's TF recipe does. Why not continue
phase 1's optimizer: phase 1's schedule has decayed to a zero learning rate at its end, its
Adam/LAMB moments are statistics of 128-token gradients, and bias-corrected moments would
be overscaled if restored under a new step count (see components/trainer/warm_start.py).

Pure: no I/O; `pipeline.config.PipelineConfig.phase2` holds one of these.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from components.pretraining_data.options import PretrainingDataOptions
from components.trainer.params import TrainingConfig

# The CLI flag of each field is --phase2_<field>; the JSON key is [phase2] <field>.
FLAG_PREFIX = "--phase2_"


@dataclasses.dataclass(frozen=True)
class Phase2Config:
    """Phase 2 of two-phase pretraining (defaults: BERT's 512 tokens, NVIDIA's 80 predictions,
    10% of the default 100000 steps of phase 1).

    Attributes:
      max_seq_length: phase 2's sequence length; the BERT config's max_position_embeddings
        must cover it from phase 1 on (the position table is trained in phase 1).
      max_predictions_per_seq: masked-LM slots per phase-2 instance.
      num_train_steps: phase 2's steps (on top of phase 1's).
      num_warmup_steps: phase 2's own warm-up (fresh optimizer, see the module docstring).
      train_batch_size: phase 2's global batch size; None: phase 1's.
      learning_rate: phase 2's peak learning rate; None: phase 1's.
    """

    max_seq_length: int = 512
    max_predictions_per_seq: int = 80
    num_train_steps: int = 10000
    num_warmup_steps: int = 1000
    train_batch_size: Optional[int] = None
    learning_rate: Optional[float] = None

    def validate(self, data: PretrainingDataOptions) -> None:
        """ValueError naming the --phase2_* flag; `data` is phase 1's (phase 2 shares its masking)."""
        for name in ("max_seq_length", "max_predictions_per_seq", "num_train_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{FLAG_PREFIX}{name} must be positive, got {getattr(self, name)}")
        if self.train_batch_size is not None and self.train_batch_size <= 0:
            raise ValueError(f"{FLAG_PREFIX}train_batch_size must be positive, got {self.train_batch_size}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ValueError(f"{FLAG_PREFIX}learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.num_warmup_steps <= self.num_train_steps:
            raise ValueError(f"{FLAG_PREFIX}num_warmup_steps must be between 0 and {FLAG_PREFIX}num_train_steps "
                             f"({self.num_train_steps}), got {self.num_warmup_steps}")
        if (self.max_seq_length, self.max_predictions_per_seq) == (data.max_seq_length, data.max_predictions_per_seq):
            raise ValueError(f"{FLAG_PREFIX}max_seq_length {self.max_seq_length} and {FLAG_PREFIX}max_predictions_per_seq "
                             f"{self.max_predictions_per_seq} equal phase 1's: phase 2 would train on the same records; "
                             f"give phase 2 a longer length (e.g. 512 after 128), or train one phase longer.")
        try:
            phase2_data_options(data, self).validate()
        except ValueError as e:
            raise ValueError(f"phase 2 ({FLAG_PREFIX}max_seq_length {self.max_seq_length}, {FLAG_PREFIX}"
                             f"max_predictions_per_seq {self.max_predictions_per_seq}): {e}") from e


def phase2_data_options(data: PretrainingDataOptions, phase2: Phase2Config) -> PretrainingDataOptions:
    """Phase 2's records: phase 1's options (corpus handling, masking, seed, shards) at phase 2's
    length and number of predictions."""
    return dataclasses.replace(data, max_seq_length=phase2.max_seq_length,
                               max_predictions_per_seq=phase2.max_predictions_per_seq)


def phase2_training(training: TrainingConfig, phase2: Phase2Config) -> TrainingConfig:
    """Phase 2's Trainer flags: phase 1's with phase 2's steps, warm-up, batch size and learning
    rate. No init_checkpoint: phase 2 starts from phase 1's model (its base_model input)."""
    return dataclasses.replace(
        training, num_train_steps=phase2.num_train_steps, num_warmup_steps=phase2.num_warmup_steps,
        train_batch_size=training.train_batch_size if phase2.train_batch_size is None else phase2.train_batch_size,
        learning_rate=training.learning_rate if phase2.learning_rate is None else phase2.learning_rate,
        init_checkpoint=None)


def phase2_step_cost(training: TrainingConfig, data: PretrainingDataOptions, phase2: Phase2Config) -> float:
    """A phase-2 step's time relative to a phase-1 step, for the run's ETA in phase 1: the ratio
    of tokens per batch. It leaves out attention's quadratic term, so at 512 after 128 it
    underestimates (phase 2 reports its own ETA from its own measured pace once it starts)."""
    phase2_batch = phase2_training(training, phase2).train_batch_size
    return (phase2_batch * phase2.max_seq_length) / (training.train_batch_size * data.max_seq_length)


def check_position_embeddings(bert_config: dict, phase1_seq: int, phase2: Optional[Phase2Config],
                              source: str) -> None:
    """Refuses a BERT config whose position table is shorter than a phase's sequences.

    Phase 2 warm-starts phase 1's weights, position table included: it must have phase 2's
    rows from the start (as BERT's 512 do while phase 1 trains at 128).

    Args:
      bert_config: the BertConfig as a dict (`max_position_embeddings`).
      source: how the user named the BERT config, e.g. "--bert_preset bert_test".
    """
    positions = bert_config.get("max_position_embeddings")
    if phase2 is None or positions is None:
        return
    if phase2.max_seq_length > positions:
        raise ValueError(
            f"{FLAG_PREFIX}max_seq_length {phase2.max_seq_length} exceeds max_position_embeddings {positions} of "
            f"the BERT config ({source}): phase 2 warm-starts phase 1's position table, so it must cover phase 2 "
            f"from the start; use a BERT config with max_position_embeddings >= {phase2.max_seq_length} "
            f"(BERT's is 512) or a shorter {FLAG_PREFIX}max_seq_length.")
    if phase1_seq > positions:
        raise ValueError(f"--max_seq_length {phase1_seq} exceeds max_position_embeddings {positions} of the BERT "
                         f"config ({source}).")
