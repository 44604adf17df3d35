"""BERT for pretraining (masked LM + next sentence), faithful to google-research/bert in TF2.

One module per job (the losses live with the trainer that runs them:
components/trainer/distributed_loss.py):
    config.py             BertConfig (the original bert_config.json) and the shipped presets
    embeddings.py         word + token type + position embeddings -> LayerNorm -> dropout
    encoder.py            post-LN transformer layers and BertModel (embeddings, encoder, pooler)
    heads.py              masked LM head (tied to the word embeddings) and next sentence head
    pretraining_model.py  BertPretrainingModel: the feature dict in, outputs and log-probs out
    optimization.py       AdamW (no bias correction, as the original) / LAMB, warmup + linear decay
    tf1_checkpoint.py     the original TF1 variable names: load and save original checkpoints
    api.py                load_pretraining_model(bert_config_file, checkpoint_path)

Keras flavour: every module does `import tf_keras as keras`, never `tf.keras`. In TF 2.16
`tf.keras` is Keras 3, but the TFX Evaluator (TFMA 0.47) loads models with tf_keras
(Keras 2), so the model, its layers, initialisers and optimizer must all be Keras 2 objects.
Importing tf_keras by name makes that independent of the TF_USE_LEGACY_KERAS variable.

Nothing is imported here so that `components.bert.config` stays cheap (no TensorFlow).
"""
