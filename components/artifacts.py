"""Artifact types this project adds to ML-metadata.

They make lineage readable: a Model's inputs name the Vocabulary it was trained
with, and the pretraining records name the Vocabulary that tokenised them.
Type names are `components.<Title>`: Kubeflow V2 / Vertex AI accept custom artifact
types only as `<namespace>.<Title>`, and TFX's container entrypoint imports that title
as a class path at run time, so it must be importable (see components/__init__.py).
The types have no typed PROPERTIES:
what describes an artifact (vocab_size, do_lower_case; instance counts, records_dir)
is recorded as custom properties.
"""
from tfx.types.artifact import Artifact


class Vocabulary(Artifact):
    """A WordPiece vocabulary: `vocab.txt` (one token per line) at the artifact's URI."""

    TYPE_NAME = "components.Vocabulary"

    FILE_NAME = "vocab.txt"


class PretrainingRecords(Artifact):
    """A manifest (`manifest.json`) of pretraining TFRecords written for ImportExampleGen.

    The records themselves live in the directory named by the manifest's
    `records_dir` (train/ and eval/ subdirectories), which ImportExampleGen reads.
    """

    TYPE_NAME = "components.PretrainingRecords"

    MANIFEST_NAME = "manifest.json"


def vocabulary_file(uri: str) -> str:
    """The vocab file of a Vocabulary artifact.

    VocabularyGen writes `<uri>/vocab.txt`; an imported vocabulary (an existing BERT
    vocab file, e.g. a released model's) has the file itself as its URI.
    """
    import tensorflow as tf  # Deferred: keeps this module importable without paying for TF.

    if tf.io.gfile.isdir(uri):
        return f"{uri.rstrip('/')}/{Vocabulary.FILE_NAME}"
    return uri
