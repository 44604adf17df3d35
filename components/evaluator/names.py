"""Names shared by the Evaluator's config and the readers of its results (no TFMA import)."""

CANDIDATE = "candidate"  # the model being judged, when a baseline is evaluated beside it
BASELINE = "baseline"  # the latest blessed model, on retraining runs
METRIC_NAMES = ("masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy", "next_sentence_loss")
