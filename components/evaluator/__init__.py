"""The Evaluator's configuration: BERT's do_eval metrics computed by TFMA, and the blessing gate."""
