"""Custom TFX components and the modules the standard components run (trainer, evaluator)."""
