"""The original TF1 variable names: read and write google-research/bert checkpoints.

A released checkpoint (bert_model.ckpt) or one written by run_pretraining.py holds
variables named as modeling.py's variable scopes (bert/encoder/layer_3/attention/self/
query/kernel, ...). `tf1_variable_map` pairs each such name with this model's variable,
by structure rather than by Keras' generated names, so the mapping does not depend on
layer naming or uniquification. Shapes are the original's: dense kernels [in, out]
(q/k/v [H, H] with the heads folded in), NSP output_weights [2, H].
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from typing import Dict, List

import tensorflow as tf

from components.bert.pretraining_model import BertPretrainingModel, ensure_built

# Entries of an original training checkpoint that are not weights: Adam slots and the
# step counter. init_checkpoint warm-starts weights only, so they are skipped.
_NON_WEIGHT_PATTERN = re.compile(r"(/adam_m$|/adam_v$|^global_step$)")
# Every original BERT checkpoint has this variable; a TF2 object checkpoint does not.
_MARKER = "bert/embeddings/word_embeddings"


def _add_dense(names: Dict[str, tf.Variable], prefix: str, dense) -> None:
    names[prefix + "/kernel"] = dense.kernel
    names[prefix + "/bias"] = dense.bias


def _add_layer_norm(names: Dict[str, tf.Variable], prefix: str, layer_norm) -> None:
    names[prefix + "/gamma"] = layer_norm.gamma
    names[prefix + "/beta"] = layer_norm.beta


def tf1_variable_map(model: BertPretrainingModel) -> "OrderedDict[str, tf.Variable]":
    """Original TF1 name -> the model's variable, for every variable of the model.

    Builds the model's variables first if needed (a forward pass on dummy features).
    """
    ensure_built(model)
    bert = model.bert
    embeddings = bert.embeddings
    names: "OrderedDict[str, tf.Variable]" = OrderedDict()
    names["bert/embeddings/word_embeddings"] = embeddings.word_embeddings
    names["bert/embeddings/token_type_embeddings"] = embeddings.token_type_embeddings
    names["bert/embeddings/position_embeddings"] = embeddings.position_embeddings
    _add_layer_norm(names, "bert/embeddings/LayerNorm", embeddings.layer_norm)
    for i, layer in enumerate(bert.encoder_layers):
        prefix = f"bert/encoder/layer_{i}"
        attention = layer.attention
        _add_dense(names, f"{prefix}/attention/self/query", attention.query)
        _add_dense(names, f"{prefix}/attention/self/key", attention.key)
        _add_dense(names, f"{prefix}/attention/self/value", attention.value)
        _add_dense(names, f"{prefix}/attention/output/dense", attention.output_dense)
        _add_layer_norm(names, f"{prefix}/attention/output/LayerNorm", attention.output_layer_norm)
        _add_dense(names, f"{prefix}/intermediate/dense", layer.intermediate)
        _add_dense(names, f"{prefix}/output/dense", layer.output_dense)
        _add_layer_norm(names, f"{prefix}/output/LayerNorm", layer.output_layer_norm)
    _add_dense(names, "bert/pooler/dense", bert.pooler)
    mlm = model.masked_lm_head
    _add_dense(names, "cls/predictions/transform/dense", mlm.transform_dense)
    _add_layer_norm(names, "cls/predictions/transform/LayerNorm", mlm.transform_layer_norm)
    names["cls/predictions/output_bias"] = mlm.output_bias
    nsp = model.next_sentence_head
    names["cls/seq_relationship/output_weights"] = nsp.output_weights
    names["cls/seq_relationship/output_bias"] = nsp.output_bias
    return names


def is_tf1_checkpoint(prefix: str) -> bool:
    """True if `prefix` (or the latest checkpoint in a directory) is an original BERT checkpoint."""
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (ValueError, tf.errors.OpError):
        return False
    return reader.has_tensor(_MARKER)


def load_tf1_checkpoint(model: BertPretrainingModel, ckpt_prefix: str,
                        allow_unused: bool = False) -> List[str]:
    """Copies the weights of an original TF1 BERT checkpoint into `model`.

    Args:
      model: the model to load into (built here if needed). Under a distribution
        strategy, build it inside strategy.scope() first.
      ckpt_prefix: checkpoint prefix (e.g. .../bert_model.ckpt) or a directory (its
        latest checkpoint).
      allow_unused: if False, checkpoint weights the model has no place for (e.g. a
        24-layer checkpoint into a 12-layer model) are an error. Adam slots (adam_m,
        adam_v) and global_step are always skipped.
    Returns:
      The original names loaded, in model order.
    Raises:
      ValueError: a model variable is missing from the checkpoint, a shape differs, or
        (unless allow_unused) the checkpoint has weights the model does not.
    """
    reader = tf.train.load_checkpoint(ckpt_prefix)
    shapes = reader.get_variable_to_shape_map()
    names = tf1_variable_map(model)

    missing = [name for name in names if name not in shapes]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ValueError(f"TF1 checkpoint {ckpt_prefix} lacks {len(missing)} variable(s) the model "
                         f"needs: {shown}")
    for name, variable in names.items():
        if list(shapes[name]) != variable.shape.as_list():
            raise ValueError(f"TF1 checkpoint {ckpt_prefix}: variable {name} has shape {shapes[name]} but the "
                             f"model expects {variable.shape.as_list()} (does the BertConfig match the "
                             f"checkpoint's bert_config.json?)")
    unused = sorted(name for name in shapes if name not in names and not _NON_WEIGHT_PATTERN.search(name))
    if unused and not allow_unused:
        shown = ", ".join(unused[:5]) + (f" and {len(unused) - 5} more" if len(unused) > 5 else "")
        raise ValueError(f"TF1 checkpoint {ckpt_prefix} has {len(unused)} weight(s) this model has no place "
                         f"for: {shown} (pass allow_unused=True to ignore them)")

    for name, variable in names.items():
        variable.assign(tf.cast(reader.get_tensor(name), variable.dtype))
    return list(names)


def save_tf1_checkpoint(model: BertPretrainingModel, prefix: str) -> str:
    """Writes the model's weights under their original TF1 names (float32).

    The result loads with load_tf1_checkpoint and, as init_checkpoint, in the original
    run_pretraining.py / run_classifier.py.

    Args:
      model: the model (built here if needed).
      prefix: checkpoint prefix; writes prefix.index and prefix.data-00000-of-00001.
    Returns:
      The prefix.
    """
    names = tf1_variable_map(model)
    directory = os.path.dirname(prefix)
    if directory:
        tf.io.gfile.makedirs(directory)
    # Outside a layer call an AutoCastVariable reads as its float32 value.
    tensors = [tf.cast(tf.convert_to_tensor(variable), tf.float32) for variable in names.values()]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(names), shape_and_slices=[""] * len(names),
                      tensors=tensors)
    return prefix
