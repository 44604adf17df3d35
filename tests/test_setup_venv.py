"""The set-up script: without Python 3.10 it stops and says how to get it."""
from __future__ import annotations

import os
import shutil
import subprocess

from conftest import REPO_ROOT


def _bare_path(tmp_path) -> str:
    """A PATH with only the tools the script uses: no python3.10 and no pyenv on it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "cat", "sha256sum", "cut", "dirname"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    return str(bin_dir)


def _copy_of_setup(tmp_path) -> str:
    root = tmp_path / "repo"
    (root / ".ci").mkdir(parents=True)
    (root / "requirements").mkdir()
    shutil.copy(os.path.join(REPO_ROOT, ".ci", "setup-venv"), root / ".ci" / "setup-venv")
    shutil.copy(os.path.join(REPO_ROOT, "requirements", "lock.txt"), root / "requirements" / "lock.txt")
    shutil.copy(os.path.join(REPO_ROOT, "setup.py"), root / "setup.py")
    (root / "components" / "pretraining_data").mkdir(parents=True)
    for name in ("_records.c", "_instances.c", "_documents.c", "_random.h"):
        shutil.copy(os.path.join(REPO_ROOT, "components", "pretraining_data", name),
                    root / "components" / "pretraining_data" / name)
    return str(root)


def test_missing_python310_is_explained(tmp_path):
    root = _copy_of_setup(tmp_path)
    env = {"PATH": _bare_path(tmp_path), "HOME": str(tmp_path)}
    result = subprocess.run([shutil.which("bash"), ".ci/setup-venv"], cwd=root, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "Python 3.10 is needed" in result.stderr
    assert "pyenv install 3.10.13" in result.stderr and "PYTHON310" in result.stderr
    assert not os.path.exists(os.path.join(root, ".venv"))


def test_a_wrong_python310_override_is_not_taken(tmp_path):
    root = _copy_of_setup(tmp_path)
    # An interpreter that is not 3.10: it fails the script's version check.
    other = tmp_path / "python3.9"
    other.write_text("#!/bin/sh\nexit 1\n")
    other.chmod(0o755)
    env = {"PATH": _bare_path(tmp_path), "HOME": str(tmp_path), "PYTHON310": str(other)}
    result = subprocess.run([shutil.which("bash"), ".ci/setup-venv"], cwd=root, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and "Python 3.10 is needed" in result.stderr
