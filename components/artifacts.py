"""Artifact types this project adds to ML-metadata.

They make lineage readable: a Model's inputs name the Vocabulary it was trained
with, and the pretraining records name the Vocabulary that tokenised them.
"""
from tfx.types.artifact import Artifact, Property, PropertyType


class Vocabulary(Artifact):
    """A WordPiece vocabulary: `vocab.txt` (one token per line) at the artifact's URI."""

    TYPE_NAME = "Vocabulary"
    PROPERTIES = {
        "vocab_size": Property(type=PropertyType.INT),
        "do_lower_case": Property(type=PropertyType.INT),
    }

    FILE_NAME = "vocab.txt"


class PretrainingRecords(Artifact):
    """A manifest (`manifest.json`) of pretraining TFRecords written for ImportExampleGen.

    The records themselves live in the directory named by the manifest's
    `records_dir` (train/ and eval/ subdirectories), which ImportExampleGen reads.
    """

    TYPE_NAME = "PretrainingRecords"
    PROPERTIES = {
        "num_train_instances": Property(type=PropertyType.INT),
        "num_eval_instances": Property(type=PropertyType.INT),
        "records_dir": Property(type=PropertyType.STRING),
    }

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
