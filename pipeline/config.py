"""The pipeline's configuration: one object, read at the entry point, JSON round-trip.

`PipelineConfig` holds what the pipeline factory needs to build the DAG: where the
text is, how to build the vocabulary and the records, the BERT architecture and the
original run_pretraining.py hyperparameters, and the evaluation gate. Paths of the
run itself (pipeline root, metadata store, serving directory) are the runner's, not
the config's, so one config serves the local runner and Vertex AI alike.
"""
from __future__ import annotations

import dataclasses
import json
import os
import typing
from typing import Any, Optional

from components.bert.config import BertConfig, load_preset
from components.pretraining_data.options import PretrainingDataOptions
from components.trainer.params import TrainingConfig
from pipeline.phases import Phase2Config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CORPUS = os.path.join(REPO_ROOT, "data", "corpus", "*.txt")


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """The Evaluator's blessing gate: a model is pushed only if it clears these bounds.

    When retraining, the candidate is also compared with the latest blessed model on the
    same eval split: its masked_lm_accuracy may be at most `max_masked_lm_accuracy_drop`
    below the baseline's (and next_sentence_accuracy at most
    `max_next_sentence_accuracy_drop`, if set).
    """

    min_masked_lm_accuracy: float = 0.01
    min_next_sentence_accuracy: float = 0.0
    max_masked_lm_accuracy_drop: float = 0.0
    max_next_sentence_accuracy_drop: Optional[float] = None

    def validate(self) -> None:
        for name in ("max_masked_lm_accuracy_drop", "max_next_sentence_accuracy_drop"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name} must be between 0 and 1 (an accuracy difference), got {value}")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything `create_pipeline` needs to know about the data, model and training.

    Either `corpus_pattern` (raw text; the pipeline learns a vocabulary and writes the
    pretraining records) or `examples_dir` (existing records in the create_pretraining_data
    schema, e.g. from the original script; no data generation) is the data source.

    Two-phase pretraining: `phase2` (JSON `"phase2": {"max_seq_length": 512, ...}`, flags
    `--phase2_*`) trains a second phase at a longer length after `data` + `training`, on
    records made from the same corpus and vocabulary. Phase 2 starts from ALL of phase 1's
    weights with a FRESH optimizer and its own warm-up and decay, as google-research/bert's
    and NVIDIA's phase 2 do: phase 1's schedule ends at a zero learning rate and its moments
    are statistics of short-sequence gradients (pipeline/phases.py says more).
    """

    pipeline_name: str = "bert-pretraining"
    corpus_pattern: str = DEFAULT_CORPUS
    examples_dir: Optional[str] = None
    vocab_file: Optional[str] = None
    vocab_size: int = 4000
    # With {SPAN} in corpus_pattern: train on the newest num_spans spans (a rolling window);
    # evaluation stays on the newest span's eval split.
    num_spans: int = 1
    bert_preset: str = "bert_test"
    bert_config_file: Optional[str] = None
    data: PretrainingDataOptions = dataclasses.field(default_factory=PretrainingDataOptions)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    # Two-phase pretraining (pipeline/phases.py): None trains one phase, `data` + `training`;
    # set, a second Trainer continues at phase 2's length, warm-started from phase 1 with a
    # fresh optimizer and warm-up (as google-research/bert's and NVIDIA's recipes do).
    phase2: Optional[Phase2Config] = None

    def validate(self) -> None:
        # Types first: a config built in Python skips from_dict's checks, and a str or float
        # where an int belongs would fail later with a TypeError or a misleading message.
        for section in ("data", "training", "evaluation"):
            _check_types(type(getattr(self, section)), dataclasses.asdict(getattr(self, section)),
                         f"config [{section}]")
        if self.phase2 is not None:
            if not isinstance(self.phase2, Phase2Config):
                raise ValueError(f"config: phase2 must be an object of phase-2 settings or null, got "
                                 f"{type(self.phase2).__name__}")
            _check_types(Phase2Config, dataclasses.asdict(self.phase2), "config [phase2]")
        _check_types(PipelineConfig, {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                                      if f.name not in _SECTIONS}, "config")
        if self.examples_dir is None and not self.corpus_pattern:
            raise ValueError("Give a corpus (--corpus) or existing pretraining records (--examples).")
        if self.examples_dir is not None and self.bert_config_file is None and self.vocab_file is None:
            raise ValueError(
                "--examples needs the vocabulary size of the records: give --vocab_file (the vocab the "
                "records were made with) or --bert_config_file (with its vocab_size).")
        for flag, pattern in (("--corpus", self.corpus_pattern), ("--examples", self.examples_dir)):
            if pattern and "{SPAN}" in pattern and "," in pattern:
                raise ValueError(f"{flag} {pattern}: a pattern with {{SPAN}} must be one pattern, not a "
                                 "comma-separated list (put every file of a span under span-{SPAN}/).")
            if pattern and "{VERSION}" in pattern and "{SPAN}" not in pattern:
                raise ValueError(f"{flag} {pattern} has {{VERSION}} but no {{SPAN}}: a version belongs to a span.")
        if self.num_spans < 1:
            raise ValueError(f"--num_spans must be at least 1, got {self.num_spans}")
        if self.num_spans > 1 and (self.examples_dir is not None or "{SPAN}" not in (self.corpus_pattern or "")):
            raise ValueError(f"--num_spans {self.num_spans} needs a --corpus pattern with {{SPAN}} (ImportExampleGen "
                             "reads one span of --examples); give e.g. --corpus 'corpus/span-{SPAN}/*.txt'.")
        if self.vocab_size < 10:
            raise ValueError(f"--vocab_size must be at least 10, got {self.vocab_size}")
        self.data.validate()
        self.training.validate()
        self.evaluation.validate()
        if self.phase2 is not None:
            if self.examples_dir is not None:
                raise ValueError("--phase2_* with --examples: phase 2's records are made from --corpus at phase 2's "
                                 "length; give --corpus, or train one phase on the existing records.")
            self.phase2.validate(self.data)

    # --- JSON round-trip -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        result = dataclasses.asdict(self)
        result["data"] = json.loads(self.data.to_json())
        if self.phase2 is None:
            # A one-phase config reads (and fingerprints) as it did before phases existed.
            del result["phase2"]
        return result

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config",
                  base: Optional["PipelineConfig"] = None) -> "PipelineConfig":
        """`base` (default: the class defaults) with the keys `values` names replaced.

        A section (data, training, evaluation) given in part keeps `base`'s values for the
        keys it leaves out. Every key is type-checked; errors name `source` and the key.
        """
        base = base or cls()
        if not isinstance(values, dict):
            raise ValueError(f"{source}: a pipeline config is a JSON object, got {type(values).__name__}")
        values = dict(values)
        _reject_unknown(cls, values, source)
        for section in ("data", "training", "evaluation"):
            if section in values:
                part = values[section]
                if not isinstance(part, dict):
                    raise ValueError(f"{source}: [{section}] must be a JSON object, got {type(part).__name__}")
                current = getattr(base, section)
                _reject_unknown(type(current), part, f"{source} [{section}]")
                _check_types(type(current), part, f"{source} [{section}]")
                values[section] = dataclasses.replace(current, **part)
        if values.get("phase2") is not None:
            part = values["phase2"]
            if not isinstance(part, dict):
                raise ValueError(f"{source}: [phase2] must be a JSON object or null, got {type(part).__name__}")
            _reject_unknown(Phase2Config, part, f"{source} [phase2]")
            _check_types(Phase2Config, part, f"{source} [phase2]")
            values["phase2"] = dataclasses.replace(base.phase2 or Phase2Config(), **part)
        _check_types(cls, {k: v for k, v in values.items() if k not in _SECTIONS}, source)
        return dataclasses.replace(base, **values)

    @classmethod
    def from_json_file(cls, path: str, base: Optional["PipelineConfig"] = None) -> "PipelineConfig":
        """The config in `path`: it overrides only the keys it names, on top of `base`."""
        try:
            with open(path, encoding="utf-8") as f:
                values = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"Cannot read pipeline config {path}: {e}") from e
        return cls.from_dict(values, source=path, base=base)

    def replace(self, **changes: Any) -> "PipelineConfig":
        return dataclasses.replace(self, **changes)


# Keys holding a nested object, type-checked field by field.
_SECTIONS = ("data", "training", "evaluation", "phase2")


def _reject_unknown(cls: type, values: dict[str, Any], source: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; known keys are {sorted(known)}")


def _check_types(cls: type, values: dict[str, Any], source: str) -> None:
    """Each value against its field's annotation: int (not bool), float (an int is fine),
    bool, str, and Optional[...] of these; a mismatch names `source`, the key and the fix."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        expected = hints[key]
        allowed = typing.get_args(expected) if typing.get_origin(expected) is typing.Union else (expected,)
        if value is None and type(None) in allowed:
            continue
        if not any(_value_has_type(value, kind) for kind in allowed if kind is not type(None)):
            names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in allowed)
            raise ValueError(f"{source}: {key} must be {names}, got {json.dumps(value, default=repr)} "
                             f"({type(value).__name__}); write a value of type {names}")


def _value_has_type(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False  # JSON true/false where a number or string is expected
    if kind is float:
        return isinstance(value, (int, float))
    if kind in (int, str):
        return isinstance(value, kind)
    return True  # nested dataclasses are checked field by field by the caller


def bert_config_dict(config: PipelineConfig) -> dict:
    """The BERT architecture as a dict. A preset leaves vocab_size open (None): the Trainer
    takes it from the vocabulary, whose size is known only after it is learned."""
    if config.bert_config_file:
        return BertConfig.from_json_file(config.bert_config_file).to_dict()
    values = load_preset(config.bert_preset).to_dict()
    values["vocab_size"] = None
    return values


def local_default() -> PipelineConfig:
    """The embedded default: the shipped corpus and a tiny BERT that trains in minutes on a CPU."""
    return PipelineConfig(
        data=PretrainingDataOptions(max_seq_length=64, max_predictions_per_seq=10, dupe_factor=2,
                                    eval_fraction=0.1, num_shards=2),
        training=TrainingConfig(train_batch_size=32, eval_batch_size=32, learning_rate=1e-3,
                                num_train_steps=300, num_warmup_steps=30, save_checkpoints_steps=100,
                                iterations_per_loop=50, max_eval_steps=20),
    )
