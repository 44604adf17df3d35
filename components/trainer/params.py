"""The Trainer's parameters: run_pretraining.py's flags, and how they travel in custom_config.

The pipeline factory puts a `TrainerParams` into the TFX Trainer's `custom_config` (a
JSON dict); `run_fn` turns it back into objects. Nothing here reads flags or files.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """run_pretraining.py's flags, under their original names and meanings.

    Batch sizes are global (all replicas together), as in the original.
    """

    train_batch_size: int = 32
    eval_batch_size: int = 8
    learning_rate: float = 5e-5
    num_train_steps: int = 100000
    num_warmup_steps: int = 10000
    save_checkpoints_steps: int = 1000
    iterations_per_loop: int = 1000
    max_eval_steps: int = 100
    keep_checkpoint_max: int = 5
    init_checkpoint: Optional[str] = None
    use_tpu: bool = False
    tpu_name: Optional[str] = None
    tpu_zone: Optional[str] = None
    gcp_project: Optional[str] = None
    # Beyond the original flags.
    optimizer_type: str = "adamw"  # or "lamb"
    # None: the optimizer's own default, off for AdamW (the original AdamWeightDecayOptimizer
    # has no bias correction) and on for LAMB (as in the LAMB paper).
    adam_bias_correction: Optional[bool] = None
    mixed_precision: str = "auto"  # auto | float32 | bfloat16 | float16
    use_xla: bool = False
    # Opt-in throughput mode: train on rows packing up to 3 instances each (block-diagonal
    # attention, so each instance's maths are unchanged; train_batch_size counts rows) with
    # XLA; bf16 comes from mixed_precision "auto" where the hardware has it natively.
    throughput_mode: bool = False
    seed: int = 12345
    # Several workers: how long one all-reduce may wait for the others before the run fails
    # (a dead worker then ends the run instead of hanging it). Covers a checkpoint the chief
    # writes between steps, so minutes, not seconds.
    collective_timeout_seconds: float = 600.0

    def validate(self) -> None:
        positive = ["train_batch_size", "eval_batch_size", "num_train_steps", "save_checkpoints_steps",
                    "iterations_per_loop", "max_eval_steps", "keep_checkpoint_max"]
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.num_warmup_steps <= self.num_train_steps:
            raise ValueError(
                f"--num_warmup_steps must be between 0 and --num_train_steps ({self.num_train_steps}), "
                f"got {self.num_warmup_steps}")
        if self.collective_timeout_seconds <= 0:
            raise ValueError(f"--collective_timeout_seconds must be positive, got {self.collective_timeout_seconds}")
        if self.learning_rate <= 0:
            raise ValueError(f"--learning_rate must be positive, got {self.learning_rate}")
        if self.optimizer_type not in ("adamw", "lamb"):
            raise ValueError(f"optimizer_type must be 'adamw' or 'lamb', got {self.optimizer_type!r}")
        if self.mixed_precision not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(
                f"mixed_precision must be auto, float32, bfloat16 or float16, got {self.mixed_precision!r}")



@dataclasses.dataclass(frozen=True)
class DynamicMasking:
    """The train records are unmasked: the input pipeline masks them as it reads them, with
    these create_pretraining_data options (see components/trainer/dynamic_masking.py)."""

    masked_lm_prob: float = 0.15
    do_whole_word_mask: bool = False


@dataclasses.dataclass(frozen=True)
class TrainerParams:
    """What `run_fn` needs beyond the data: architecture, flags, shapes and where to checkpoint.

    `checkpoint_dir` is stable across pipeline runs (not the per-execution ModelRun
    directory), so a rerun after a kill resumes from the last checkpoint there.
    """

    bert_config: dict
    training: TrainingConfig
    max_seq_length: int
    max_predictions_per_seq: int
    checkpoint_dir: str
    vocab_file: Optional[str] = None
    # pipeline.code_version.CodeVersion.to_dict() of the code that built the pipeline: in the
    # Trainer's inputs so a code change is a cache miss, and recorded with the model.
    code_version: Optional[dict] = None
    # Two-phase pretraining (pipeline/phases.py): 1 or 2; None in a one-phase run. Phase 1
    # may warm-start from a base model trained at another length (retraining after a
    # two-phase run); phase 2 warm-starts phase 1's weights only, with a fresh optimizer.
    phase: Optional[int] = None
    # How often the Trainer logs its progress line (examples/s, tokens/s, phase, ETAs) and
    # writes the same scalars to TensorBoard; 0 = after every compiled chunk of steps. Not
    # in PipelineConfig: how often to report changes nothing trained, nor the checkpoint dir.
    progress_interval_seconds: float = 60.0
    # None: the records are masked (the original's static masking).
    dynamic_masking: Optional[DynamicMasking] = None
    # For the run's ETA in phase 1 of two: phase 2's steps, and the cost of one of its steps
    # relative to one of phase 1's (pipeline/phases.py estimates it from tokens per batch).
    later_phase_steps: int = 0
    later_step_cost: float = 1.0

    @property
    def phase_name(self) -> str:
        """The phase's name in progress lines and TensorBoard: phase1 unless this is phase 2."""
        return f"phase{self.phase or 1}"

    def to_custom_config(self) -> dict[str, Any]:
        values = {
            "bert_config": dict(self.bert_config),
            "training": dataclasses.asdict(self.training),
            "max_seq_length": self.max_seq_length,
            "max_predictions_per_seq": self.max_predictions_per_seq,
            "checkpoint_dir": self.checkpoint_dir,
            "vocab_file": self.vocab_file,
            "code_version": self.code_version,
            "progress_interval_seconds": self.progress_interval_seconds,
            "dynamic_masking": dataclasses.asdict(self.dynamic_masking) if self.dynamic_masking else None,
        }
        if self.phase is not None:
            # Only when set: a one-phase Trainer's custom_config (its cache key) is unchanged.
            values["phase"] = self.phase
        if self.later_phase_steps:
            values.update(later_phase_steps=self.later_phase_steps, later_step_cost=self.later_step_cost)
        return values

    @classmethod
    def from_custom_config(cls, custom_config: dict[str, Any]) -> "TrainerParams":
        missing = [k for k in ("bert_config", "training", "max_seq_length", "max_predictions_per_seq",
                               "checkpoint_dir") if k not in (custom_config or {})]
        if missing:
            raise ValueError(f"Trainer custom_config lacks {missing}; build the Trainer with "
                             f"pipeline.pipeline.create_pipeline or TrainerParams.to_custom_config().")
        training_values = dict(custom_config["training"])
        known = {f.name for f in dataclasses.fields(TrainingConfig)}
        unknown = sorted(set(training_values) - known)
        if unknown:
            raise ValueError(f"Trainer custom_config['training'] has unknown keys {unknown}")
        return cls(
            bert_config=dict(custom_config["bert_config"]),
            training=TrainingConfig(**training_values),
            max_seq_length=int(custom_config["max_seq_length"]),
            max_predictions_per_seq=int(custom_config["max_predictions_per_seq"]),
            checkpoint_dir=custom_config["checkpoint_dir"],
            vocab_file=custom_config.get("vocab_file"),
            code_version=custom_config.get("code_version"),
            phase=custom_config.get("phase"),
            progress_interval_seconds=float(custom_config.get("progress_interval_seconds", 60.0)),
            dynamic_masking=(DynamicMasking(**custom_config["dynamic_masking"])
                             if custom_config.get("dynamic_masking") else None),
            later_phase_steps=int(custom_config.get("later_phase_steps", 0)),
            later_step_cost=float(custom_config.get("later_step_cost", 1.0)),
        )
