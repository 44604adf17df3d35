"""The BERT pretraining pipeline: configuration, the `create_pipeline` factory and its runners."""
