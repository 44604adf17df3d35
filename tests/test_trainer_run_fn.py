"""do_train -> do_eval -> export on tiny records written by an independent writer."""
from __future__ import annotations


import numpy as np
import pytest
import tensorflow as tf

from components.trainer.run_fn import pretrain, resolve_bert_config
from conftest import TINY_PREDS, TINY_VOCAB_SIZE, tiny_bert_config
from trainer_helpers import split_files, tiny_params


@pytest.fixture(scope="module")
def trained(independent_records, tiny_vocab_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    params = tiny_params(str(out / "ckpt"), vocab_file=tiny_vocab_file)
    metrics = pretrain(params, split_files(independent_records, "train"), split_files(independent_records, "eval"),
                       str(out / "serving"), str(out / "run"))
    return {"out": out, "params": params, "metrics": metrics}


def test_eval_results_written_like_run_pretraining(trained):
    text = (trained["out"] / "run" / "eval_results.txt").read_text()
    values = dict(line.split(" = ") for line in text.strip().splitlines())
    assert set(values) >= {"global_step", "loss", "masked_lm_accuracy", "masked_lm_loss",
                           "next_sentence_accuracy", "next_sentence_loss"}
    assert int(values["global_step"]) == 6
    assert 0.0 <= float(values["masked_lm_accuracy"]) <= 1.0
    # Untrained-ish model on 100 tokens: loss near ln(95) for MLM and ln(2) for NSP.
    assert 3.0 < float(values["masked_lm_loss"]) < 6.0
    assert 0.3 < float(values["next_sentence_loss"]) < 1.2
    assert float(values["loss"]) == pytest.approx(float(values["masked_lm_loss"]) + float(values["next_sentence_loss"]),
                                                  rel=1e-5)
    # 4 eval batches of 8 (--max_eval_steps 4) from a 48-example split, and the file says so.
    assert trained["metrics"]["eval_examples"] == 32 and int(values["eval_examples"]) == 32
    assert values["eval_scope"] == "first 4 batches"


def test_checkpoints_every_save_steps_with_config(trained):
    ckpt = trained["out"] / "ckpt"
    assert tf.train.latest_checkpoint(str(ckpt)).endswith("ckpt-6")
    assert (ckpt / "ckpt-3.index").exists()
    assert '"hidden_size": 32' in (ckpt / "bert_config.json").read_text()


def test_exported_signature_runs_on_serialized_examples(trained, independent_records):
    loaded = tf.saved_model.load(str(trained["out"] / "serving"))
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(split_files(independent_records, "eval")).take(3)]
    outputs = loaded.signatures["serving_default"](examples=tf.constant(serialized))
    assert outputs["masked_lm"].shape == (3, TINY_PREDS, TINY_VOCAB_SIZE)
    assert outputs["next_sentence"].shape == (3, 2)
    # Log-probabilities: each distribution sums to one after exp.
    np.testing.assert_allclose(tf.reduce_logsumexp(outputs["masked_lm"], -1).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(tf.reduce_logsumexp(outputs["next_sentence"], -1).numpy(), 0.0, atol=1e-4)
    encoded = loaded.signatures["encode"](examples=tf.constant(serialized))
    assert encoded["sequence_output"].shape == (3, 32, 32)
    assert encoded["pooled_output"].shape == (3, 32)


def test_export_carries_vocab_and_config_assets(trained, tiny_vocab_file):
    assets = trained["out"] / "serving" / "assets"
    assert (assets / "vocab.txt").read_text() == open(tiny_vocab_file).read()
    assert '"num_hidden_layers": 2' in (assets / "bert_config.json").read_text()


def test_rerun_resumes_instead_of_restarting(trained, independent_records, tmp_path):
    before = tf.train.latest_checkpoint(str(trained["out"] / "ckpt"))
    metrics = pretrain(trained["params"], split_files(independent_records, "train"),
                       split_files(independent_records, "eval"), str(tmp_path / "serving"), str(tmp_path / "run"))
    assert metrics["global_step"] == 6  # resumed at 6: no further steps
    assert tf.train.latest_checkpoint(str(trained["out"] / "ckpt")) == before
    assert metrics["masked_lm_loss"] == pytest.approx(trained["metrics"]["masked_lm_loss"], rel=1e-6)


def test_vocab_size_comes_from_the_vocabulary_when_open(tiny_vocab_file):
    assert resolve_bert_config(tiny_bert_config(vocab_size=None), tiny_vocab_file).vocab_size == TINY_VOCAB_SIZE
    with pytest.raises(ValueError, match="smaller than the vocabulary"):
        resolve_bert_config(tiny_bert_config(vocab_size=50), tiny_vocab_file)
    with pytest.raises(ValueError, match="--vocab_file"):
        resolve_bert_config(tiny_bert_config(vocab_size=None), None)


def test_seq_longer_than_position_table_is_refused(independent_records, tmp_path):
    params = tiny_params(str(tmp_path / "ckpt"), bert_config=tiny_bert_config(max_position_embeddings=16))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        pretrain(params, split_files(independent_records, "train"), split_files(independent_records, "eval"),
                 str(tmp_path / "serving"), str(tmp_path / "run"))


def test_init_checkpoint_from_original_tf1_names_warm_starts_weights_only(independent_records, tmp_path):
    """A checkpoint with google-research/bert's variable names seeds the weights; the step starts at 0."""
    import tf_keras as keras

    from components.bert.config import BertConfig
    from components.bert.pretraining_model import BertPretrainingModel, ensure_built
    from components.bert.tf1_checkpoint import save_tf1_checkpoint

    keras.utils.set_random_seed(2024)
    source = BertPretrainingModel(BertConfig.from_dict(tiny_bert_config()))
    ensure_built(source)
    prefix = save_tf1_checkpoint(source, str(tmp_path / "tf1" / "bert_model.ckpt"))
    assert "bert/encoder/layer_0/attention/self/query/kernel" in dict(tf.train.list_variables(prefix))

    # learning_rate tiny and 1 step: the trained weights stay within 1e-3 of the warm start.
    params = tiny_params(str(tmp_path / "ckpt"), num_train_steps=1, save_checkpoints_steps=1, iterations_per_loop=1,
                         num_warmup_steps=0, learning_rate=1e-9, init_checkpoint=prefix)
    metrics = pretrain(params, split_files(independent_records, "train"), split_files(independent_records, "eval"),
                       str(tmp_path / "serving"), str(tmp_path / "run"))
    assert metrics["global_step"] == 1
    restored = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "ckpt")))
    names = [n for n, _ in tf.train.list_variables(tf.train.latest_checkpoint(str(tmp_path / "ckpt")))]
    word_embedding_key = next(n for n in names if "word_embeddings" in n and "OPTIMIZER" not in n)
    np.testing.assert_allclose(restored.get_tensor(word_embedding_key),
                               source.bert.embeddings.word_embedding_table.numpy(), atol=1e-3)


def test_tensorboard_summaries_are_written(trained):
    tags = set()
    for split in ("train", "eval"):
        for path in tf.io.gfile.glob(str(trained["out"] / "run" / split / "events.out.tfevents.*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                tags.update(value.tag for value in event.summary.value)
    assert {"train/loss", "train/masked_lm_accuracy", "train/next_sentence_accuracy", "train/learning_rate",
            "train/steps_per_sec", "train/examples_per_sec", "eval/masked_lm_accuracy", "eval/loss"} <= tags
