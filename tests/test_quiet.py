"""`bertpipe` quiets library chatter itself (pipeline/quiet.py, applied by the console script
pipeline/entry_point.py before any heavy import), and keeps real warnings. Checked in fresh
interpreters started without the Makefile's variables, as a user's shell would start one."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO_ROOT
from pipeline import quiet


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in quiet.QUIET_ENV}
    env["PYTHONPATH"] = REPO_ROOT
    return env


def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_defaults_are_set_and_the_users_own_values_win():
    environ = {"TF_CPP_MIN_LOG_LEVEL": "0", "PYTHONWARNINGS": "default"}
    assert quiet.apply(environ) == {"GRPC_VERBOSITY": "ERROR"}
    assert environ == {"TF_CPP_MIN_LOG_LEVEL": "0", "PYTHONWARNINGS": "default", "GRPC_VERBOSITY": "ERROR"}
    assert quiet.apply(environ) == {}  # idempotent


def test_chatter_is_dropped_and_real_warnings_show():
    code = """
import logging, os, subprocess, sys, warnings
from pipeline import quiet
quiet.apply()
from absl import logging as absl_logging
warnings.warn("version notice", FutureWarning)
warnings.warn("a real user warning", UserWarning)
absl_logging.warning("ArtifactQuery.property_predicate is not supported.")
absl_logging.warning("a real absl warning")
logging.getLogger("tensorflow").error("a real tensorflow error")
# A subprocess (run-spec's tasks, Beam workers) inherits the quiet variables.
subprocess.run([sys.executable, "-c", "import os, warnings; warnings.warn('child notice', FutureWarning); "
                "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"], check=True)
"""
    result = _python(code, _clean_env())
    assert result.returncode == 0, result.stderr
    assert "a real user warning" in result.stderr and "a real absl warning" in result.stderr
    assert "a real tensorflow error" in result.stderr
    assert "version notice" not in result.stderr and "property_predicate" not in result.stderr
    assert "child notice" not in result.stderr and result.stdout.strip() == "3"


def test_the_console_script_quiets_before_the_cli_is_imported():
    """The check that it happens first: after `import pipeline.entry_point` alone nothing is set;
    main() sets the variables before pipeline.cli (and ML-metadata, gRPC) is imported."""
    code = """
import os, sys
import pipeline.entry_point as entry
assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ and "pipeline.cli" not in sys.modules
import builtins
real_import = builtins.__import__
seen = {}
def spy(name, *args, **kwargs):
    if name.startswith(("ml_metadata", "grpc")) and name not in seen:
        seen[name] = os.environ.get("TF_CPP_MIN_LOG_LEVEL"), os.environ.get("GRPC_VERBOSITY")
    return real_import(name, *args, **kwargs)
builtins.__import__ = spy
try:
    entry.main(["lineage", "--help"])
except SystemExit:
    pass
assert seen and all(v == ("3", "ERROR") for v in seen.values()), seen
"""
    result = _python(code, _clean_env())
    assert result.returncode == 0, result.stderr
