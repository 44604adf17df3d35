"""The Trainer's module: BERT pretraining `run_fn` and the pieces it is made of."""
