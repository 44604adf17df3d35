"""Quiet by default: the library chatter `make` silences, silenced by `bertpipe` itself.

Run directly, `bertpipe` would otherwise print TensorFlow's C++ start-up lines (CUDA plugin
probes on a CPU machine, oneDNN notices), gRPC's C-core info lines and the Google client
libraries' Python-version FutureWarnings before its answer. All of them are read when the
library loads (TensorFlow and gRPC read their variables at import), so `apply()` must run
before those imports: the console script's module (pipeline/entry_point.py) calls it before
it imports the CLI. Values the user set win; real warnings (UserWarning, DeprecationWarning
of our own code, TFX's and Beam's Python log at WARNING) and errors still show. The
variables are inherited by the subprocesses a run starts (run-spec's tasks, Beam workers).
"""
from __future__ import annotations

import logging
import os
import warnings
from typing import MutableMapping, Optional

# The Makefile's quieting (see its header), plus gRPC's own level: C-core lines below ERROR
# (e.g. fork-handler notices) are not the user's business.
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow C++: errors only (CUDA probes, cuDNN factory lines)
    "GRPC_VERBOSITY": "ERROR",  # gRPC C-core (ML-metadata's client, google-cloud libraries)
    "PYTHONWARNINGS": "ignore::FutureWarning",  # google-api-core's "non-supported Python version" notices
}


# Library log lines at WARNING that say nothing the user can act on: (logger, text in the message).
# Anything else the libraries log at WARNING or above still shows.
QUIET_LOG_MESSAGES = (
    # TFX's ExecutorClassSpec use inside TFX's own components and its resolver internals.
    ("absl", "`custom_executor_spec` is deprecated"),
    ("absl", "ArtifactQuery.property_predicate is not supported"),
    # An optional speed-up of Beam's TFRecord checksums (python-snappy is not in the lock).
    ("apache_beam.io.tfrecordio", "Couldn't find python-snappy"),
    # TFMA reading its own validation file with a deprecated TensorFlow reader.
    ("tensorflow", "tf_record_iterator (from tensorflow.python.lib.io.tf_record) is deprecated"),
)


class _DropMessages(logging.Filter):
    def __init__(self, texts: tuple[str, ...]):
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self.texts)


def quiet_library_logs() -> None:
    """Adds one filter per logger of QUIET_LOG_MESSAGES (once)."""
    from absl import logging as _absl_logging  # noqa: F401  # pylint: disable=import-outside-toplevel
    # absl installs its own Logger class for "absl" at import: import it before getLogger("absl"),
    # or getLogger would create a plain Logger under that name first.

    for name in sorted({name for name, _ in QUIET_LOG_MESSAGES}):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(tuple(text for n, text in QUIET_LOG_MESSAGES if n == name)))


def apply(environ: Optional[MutableMapping[str, str]] = None) -> dict[str, str]:
    """Sets each QUIET_ENV variable the user has not set, in this process ignores
    FutureWarning unless the user chose PYTHONWARNINGS, and drops QUIET_LOG_MESSAGES. Idempotent.

    Returns:
      the variables it set (name -> value).
    """
    environ = os.environ if environ is None else environ
    set_here = {name: value for name, value in QUIET_ENV.items() if name not in environ}
    environ.update(set_here)
    if "PYTHONWARNINGS" in set_here:
        # PYTHONWARNINGS is read at interpreter start-up: for this process the filter is added here.
        warnings.filterwarnings("ignore", category=FutureWarning)
    quiet_library_logs()
    return set_here
