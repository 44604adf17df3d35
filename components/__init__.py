"""Custom TFX components and the modules the standard components run (trainer, evaluator).

The package also names this project's artifact types for Kubeflow V2 / Vertex AI: a
custom type's schema title there is `<namespace>.<Title>` with one dot, and TFX's
container entrypoint imports that title as a Python class path at run time. The types'
TYPE_NAMEs are therefore `components.Vocabulary` and `components.PretrainingRecords`,
and `components.<Title>` must resolve to the class. The attributes are loaded on first
use (PEP 562), so importing any `components.*` module does not pay for TFX.
"""

_ARTIFACT_TYPES = ("Vocabulary", "PretrainingRecords")


def __getattr__(name: str):
    if name in _ARTIFACT_TYPES:
        from components import artifacts  # pylint: disable=import-outside-toplevel

        return getattr(artifacts, name)
    raise AttributeError(f"module 'components' has no attribute {name!r}")
