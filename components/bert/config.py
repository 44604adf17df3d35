"""BertConfig: the architecture of a BERT model, as google-research/bert's bert_config.json.

Field names, meanings and defaults are the original `modeling.BertConfig`'s, so the
released bert_config.json files load unchanged and files written here load in the
original code. No TensorFlow import: the pipeline reads configs at its entry point.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from typing import Any, Mapping, Optional

# Activations the original `modeling.get_activation` accepts (besides None).
SUPPORTED_ACTIVATIONS = ("gelu", "relu", "tanh", "linear")

# Keys some released bert_config.json files carry (multilingual and Chinese models) that
# the original modeling.py never reads. They are accepted and dropped, so those files load.
_IGNORED_RELEASE_KEYS = frozenset({
    "directionality", "pooler_fc_size", "pooler_num_attention_heads", "pooler_num_fc_layers",
    "pooler_size_per_head", "pooler_type",
})

_CONFIGS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

# The JSON files in configs/, by name. bert_tiny..bert_medium are the "Well-Read Students
# Learn Better" grid (Turc et al. 2019) released with google-research/bert; bert_test is a
# toy model for unit tests and the default local run.
PRESET_NAMES = ("bert_tiny", "bert_mini", "bert_small", "bert_medium", "bert_base", "bert_large",
                "bert_test")

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Configuration of a BertModel (google-research/bert `modeling.BertConfig`).

    Attributes:
      vocab_size: size of the WordPiece vocabulary (rows of the word embedding table).
      hidden_size: H, the width of every layer.
      num_hidden_layers: L, the number of transformer layers.
      num_attention_heads: A, heads per attention layer; must divide hidden_size.
      intermediate_size: width of the feed-forward layer inside each transformer layer.
      hidden_act: activation of the feed-forward layer and the MLM transform
        ("gelu" is the original tanh approximation).
      hidden_dropout_prob: dropout on embeddings, attention output and feed-forward output.
      attention_probs_dropout_prob: dropout on the attention probabilities.
      max_position_embeddings: rows of the position table, the longest sequence accepted.
      type_vocab_size: rows of the token type (segment) table.
      initializer_range: stddev of the truncated-normal initialiser of all weight matrices.
    """

    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 16
    initializer_range: float = 0.02

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            # bool is an int subclass; `"hidden_size": true` in a JSON file is a mistake.
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"BertConfig.{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"BertConfig.hidden_size ({self.hidden_size}) is not a multiple of "
                f"num_attention_heads ({self.num_attention_heads}): each head gets "
                f"hidden_size / num_attention_heads dimensions")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"BertConfig.{name} must be a number in [0, 1), got {value!r}")
        if (isinstance(self.initializer_range, bool) or not isinstance(self.initializer_range, (int, float))
                or self.initializer_range <= 0):
            raise ValueError(f"BertConfig.initializer_range must be positive, got {self.initializer_range!r}")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(
                f"BertConfig.hidden_act must be one of {SUPPORTED_ACTIVATIONS}, got {self.hidden_act!r}")

    @property
    def attention_head_size(self) -> int:
        """Dimensions per attention head: hidden_size / num_attention_heads."""
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "dict") -> "BertConfig":
        """Builds a config from a dict of the original bert_config.json keys.

        Args:
          values: field name -> value. Keys the original modeling.py ignores in released
            files (pooler_*, directionality) are dropped; any other unknown key is an error.
          source: where the dict came from, for error messages (e.g. a file path).
        Raises:
          ValueError: unknown key, missing vocab_size, or an invalid value.
        """
        if not isinstance(values, Mapping):
            raise ValueError(f"A BertConfig must be a JSON object, got {type(values).__name__} from {source}")
        known = {field.name for field in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in values.items():
            if key in known:
                kwargs[key] = value
            elif key in _IGNORED_RELEASE_KEYS:
                _log.info("Ignoring %r in %s: the original modeling.py does not use it", key, source)
            else:
                raise ValueError(
                    f"Unknown BertConfig key {key!r} in {source}; known keys: {sorted(known)}")
        if "vocab_size" not in kwargs:
            raise ValueError(f"BertConfig needs 'vocab_size', missing from {source}")
        return cls(**kwargs)

    @classmethod
    def from_json_file(cls, path: str) -> "BertConfig":
        """Reads a bert_config.json (the original's or one written by `to_json_file`)."""
        # tf.io.gfile would read gs:// too, but would make this module import TensorFlow.
        opener = _gfile_open if "://" in path else open
        with opener(path, "r") as f:
            text = f.read()
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from e
        return cls.from_dict(values, source=path)

    def to_dict(self) -> dict:
        """The config as a plain dict, keys as in the original bert_config.json."""
        return dataclasses.asdict(self)

    def to_json_string(self) -> str:
        """The config as JSON, formatted as the original (`indent=2, sort_keys=True`)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path: str) -> None:
        """Writes the config to `path` atomically: a reader never sees a half-written file."""
        if "://" in path:
            import tensorflow as tf  # Only for remote paths (gs://); local writes stay TF-free.
            tmp = path + ".tmp"
            with tf.io.gfile.GFile(tmp, "w") as f:
                f.write(self.to_json_string())
            tf.io.gfile.rename(tmp, path, overwrite=True)
            return
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".bert_config.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self.to_json_string())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    def replace(self, **changes) -> "BertConfig":
        """A copy with some fields changed (validated like a new config)."""
        return dataclasses.replace(self, **changes)


def load_preset(name: str, vocab_size: Optional[int] = None) -> BertConfig:
    """Loads a shipped architecture from configs/<name>.json.

    Args:
      name: one of PRESET_NAMES.
      vocab_size: if given, replaces the preset's vocab_size (the presets carry the
        English uncased vocabulary's 30522; bert_test carries 100).
    Raises:
      ValueError: unknown preset name.
    """
    if name not in PRESET_NAMES:
        raise ValueError(f"Unknown BERT preset {name!r}; choose one of {PRESET_NAMES}")
    config = BertConfig.from_json_file(os.path.join(_CONFIGS_DIR, name + ".json"))
    if vocab_size is not None:
        config = config.replace(vocab_size=vocab_size)
    return config


def _gfile_open(path: str, mode: str):
    import tensorflow as tf  # Remote paths (gs://) only.
    return tf.io.gfile.GFile(path, mode)
