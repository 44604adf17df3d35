"""The two images, checked statically (no container engine here): base image, what is
installed and how, the build argument that names the commit, and the build's own import
check, which is run here against the same lock."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

DOCKERFILES = {"cpu": "kubeflow/Dockerfile", "tpu": "kubeflow/Dockerfile.tpu"}
ENTRYPOINTS = ("tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor", "tfx.scripts.run_executor")


def instructions(relative_path: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    with open(f"{REPO_ROOT}/{relative_path}", encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def _runs(steps) -> list[str]:
    return [args for keyword, args in steps if keyword == "RUN"]


def _import_check(steps) -> list[str]:
    """The modules the build's `python -c "import ..."` step imports."""
    for run in _runs(steps):
        match = re.search(r'python -c "import ([^"]+)"', run)
        if match:
            return [name.strip() for name in match.group(1).split(",")]
    raise AssertionError("no import check in the build")


def _lock_versions() -> dict[str, str]:
    with open(f"{REPO_ROOT}/requirements/lock.txt", encoding="utf-8") as f:
        return dict(line.strip().split("==", 1) for line in f if "==" in line and not line.startswith("#"))


@pytest.mark.parametrize("kind", DOCKERFILES)
def test_image_is_python_310_with_the_lock_and_the_project(kind):
    steps = instructions(DOCKERFILES[kind])
    assert steps[0][0] == "FROM" and re.fullmatch(r"python:3\.10(-slim)?", steps[0][1])
    runs = " && ".join(_runs(steps))
    copies = [args for keyword, args in steps if keyword == "COPY"]
    assert copies[0] == "requirements/lock.txt requirements/lock.txt"  # its own layer, before the code
    # The lock, fully resolved, installed without resolution, as locally.
    lock_install = re.search(r"pip install --no-deps -r (\S+)", runs)
    assert lock_install, runs
    assert "pip install --no-deps -e ." in runs
    for copy in copies:
        if copy.startswith("--from="):
            continue  # from another image, not the checkout
        for source in shlex.split(copy)[:-1]:
            assert subprocess.run(["test", "-e", f"{REPO_ROOT}/{source}"]).returncode == 0, source
    assert set(ENTRYPOINTS) <= set(_import_check(steps))
    # The commit reaches pipeline/code_version.py, which reads BERTPIPE_GIT_COMMIT.
    assert ("ARG", 'BERTPIPE_GIT_COMMIT=""') in steps
    env = " ".join(args for keyword, args in steps if keyword == "ENV")
    assert "BERTPIPE_GIT_COMMIT=${BERTPIPE_GIT_COMMIT}" in env
    from pipeline.code_version import GIT_COMMIT_ENV
    assert GIT_COMMIT_ENV == "BERTPIPE_GIT_COMMIT"


def test_cpu_image_is_also_a_dataflow_worker_of_the_locked_beam():
    steps = instructions(DOCKERFILES["cpu"])
    beam = _lock_versions()["apache-beam"]
    assert ("COPY", f"--from=apache/beam_python3.10_sdk:{beam} /opt/apache/beam /opt/apache/beam") in steps
    assert steps[-1] == ("ENTRYPOINT", '["/opt/apache/beam/boot"]')


def test_cpu_image_installs_the_lock_as_is():
    runs = " && ".join(_runs(instructions(DOCKERFILES["cpu"])))
    assert "pip install --no-deps -r requirements/lock.txt" in runs


def test_tpu_image_swaps_in_the_tpu_build_of_the_locks_tensorflow_and_its_libtpu():
    steps = instructions(DOCKERFILES["tpu"])
    args = dict(a.split("=", 1) for keyword, a in steps if keyword == "ARG" and "=" in a)
    lock = _lock_versions()
    # The TPU VM build of the lock's TensorFlow minor version, and the libtpu Cloud TPU pairs with it.
    assert args["TF_TPU_VERSION"].rsplit(".", 1)[0] == lock["tensorflow"].rsplit(".", 1)[0] == "2.16"
    assert args["LIBTPU_VERSION"] == "1.10.1"
    runs = " && ".join(_runs(steps))
    assert "grep -v '^tensorflow==' requirements/lock.txt > /tmp/lock-without-tensorflow.txt" in runs
    assert "pip install --no-deps -r /tmp/lock-without-tensorflow.txt" in runs
    assert ("https://storage.googleapis.com/cloud-tpu-tpuvm-artifacts/tensorflow/tf-${TF_TPU_VERSION}/"
            "tensorflow-${TF_TPU_VERSION}-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl") in runs
    assert ("ADD", "https://storage.googleapis.com/cloud-tpu-tpuvm-artifacts/libtpu/${LIBTPU_VERSION}/libtpu.so "
                   "/tmp/libtpu.so") in steps
    # The PJRT runtime Vertex AI requires for TensorFlow on v5e, pointed at the checked libtpu.
    envs = " ".join(a for keyword, a in steps if keyword == "ENV")
    assert "NEXT_PLUGGABLE_DEVICE_USE_C_API=true" in envs and "TF_PLUGGABLE_DEVICE_LIBRARY_PATH=/lib/libtpu.so" in envs
    # The lock's other TensorFlow packages accept the TPU build's version.
    assert lock["tf-keras"].startswith("2.16.") and lock["tensorflow-text"].startswith("2.16.")


def test_the_builds_import_checks_pass_against_the_lock():
    """What both builds import at their end imports here, in a fresh interpreter, with the
    same lock installed: the entry points Vertex AI runs and the project's modules."""
    modules = sorted(set(_import_check(instructions(DOCKERFILES["cpu"])))
                     | set(_import_check(instructions(DOCKERFILES["tpu"]))))
    result = subprocess.run([sys.executable, "-c", f"import {', '.join(modules)}"], capture_output=True, text=True,
                            timeout=300, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]


def _libtpu_check(tmp_path, sha256: str) -> subprocess.CompletedProcess:
    """The TPU image's libtpu RUN step, run by the shell here on a stand-in file (paths moved
    under tmp_path), with LIBTPU_SHA256 as the build argument."""
    [step] = [run for run in _runs(instructions(DOCKERFILES["tpu"])) if "LIBTPU_SHA256" in run]
    (tmp_path / "lib").mkdir(exist_ok=True)
    (tmp_path / "libtpu.so").write_bytes(b"not really libtpu")
    script = step.replace("/tmp/libtpu.so", str(tmp_path / "libtpu.so")).replace("/lib/libtpu.so",
                                                                                   str(tmp_path / "lib" / "libtpu.so"))
    env = {"PATH": "/usr/bin:/bin", "LIBTPU_SHA256": sha256, "LIBTPU_VERSION": "1.10.1"}
    return subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)


def test_libtpu_is_kept_only_with_the_sha256_given(tmp_path):
    import hashlib  # pylint: disable=import-outside-toplevel

    right = hashlib.sha256(b"not really libtpu").hexdigest()
    missing = _libtpu_check(tmp_path, "")
    assert missing.returncode != 0 and "give --build-arg LIBTPU_SHA256" in missing.stderr
    wrong = _libtpu_check(tmp_path, "0" * 64)
    assert wrong.returncode != 0 and "does not have sha256" in wrong.stderr
    assert not (tmp_path / "lib" / "libtpu.so").exists()
    assert _libtpu_check(tmp_path, right).returncode == 0
    assert (tmp_path / "lib" / "libtpu.so").read_bytes() == b"not really libtpu"
