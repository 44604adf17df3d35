"""components.pusher.atomic_push: a version directory appears complete or not at all."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys

import pytest
from tfx.dsl.io import fileio

from components.pusher import atomic_push


def _fake_model(path, files: int = 3, size: int = 1000) -> str:
    os.makedirs(os.path.join(path, "variables"))
    os.makedirs(os.path.join(path, "assets"))
    for i in range(files):
        with open(os.path.join(path, "variables", f"variables.data-{i:05d}"), "wb") as f:
            f.write(os.urandom(size))
    for name in ("fingerprint.pb", "saved_model.pb", os.path.join("assets", "vocab.txt")):
        with open(os.path.join(path, name), "wb") as f:
            f.write(name.encode())
    return str(path)


def _tree(path: str) -> dict[str, bytes]:
    found = {}
    for dirpath, _, names in os.walk(path):
        for name in names:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                found[os.path.relpath(full, path)] = f.read()
    return found


def test_publish_makes_a_complete_version_and_never_overwrites(tmp_path):
    model = _fake_model(tmp_path / "model")
    base = str(tmp_path / "serving")
    version, path = atomic_push.publish(model, base, version=100)
    assert (version, path) == ("100", os.path.join(base, "100"))
    published = _tree(path)
    assert published.pop(atomic_push.COMPLETE_MARKER)
    assert published == _tree(model)
    # The same version number again: the next free one, the first left as it was.
    version2, path2 = atomic_push.publish(model, base, version=100)
    assert version2 == "101" and _tree(path)[atomic_push.COMPLETE_MARKER]
    assert sorted(os.listdir(base)) == ["100", "101"]


def test_a_copy_that_fails_half_way_leaves_no_version_and_the_next_push_removes_its_debris(tmp_path, monkeypatch):
    model = _fake_model(tmp_path / "model")
    base = str(tmp_path / "serving")
    real_copy, copied = fileio.copy, []

    def failing_copy(src, dst, overwrite=False):
        if len(copied) == 2:
            raise OSError("disk full")
        copied.append(dst)
        real_copy(src, dst, overwrite=overwrite)

    monkeypatch.setattr(fileio, "copy", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        atomic_push.publish(model, base, version=7)
    monkeypatch.setattr(fileio, "copy", real_copy)
    names = os.listdir(base)
    assert not [n for n in names if n.isdigit()], names  # nothing a model server would load
    assert [n for n in names if atomic_push.PARTIAL_INFIX in n]
    # Debris of older code: a version directory killed before its saved_model.pb.
    os.makedirs(os.path.join(base, "5"))
    open(os.path.join(base, "5", "fingerprint.pb"), "wb").close()
    atomic_push.publish(model, base, version=7)
    assert sorted(os.listdir(base)) == ["7"]


_PUBLISH_SLOWLY = """
import sys, time
from tfx.dsl.io import fileio
from components.pusher import atomic_push
real_copy = fileio.copy
def slow_copy(src, dst, overwrite=False):
    real_copy(src, dst, overwrite=overwrite)
    print("copied", dst, flush=True)
    time.sleep(0.5)
fileio.copy = slow_copy
atomic_push.publish(sys.argv[1], sys.argv[2], version=42)
"""


def test_a_push_killed_mid_copy_leaves_no_version(tmp_path):
    """The push runs in a child process, killed with SIGKILL after its second file."""
    model = _fake_model(tmp_path / "model", files=6)
    base = str(tmp_path / "serving")
    child = subprocess.Popen([sys.executable, "-c", _PUBLISH_SLOWLY, model, base], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        for _ in range(2):
            assert child.stdout.readline().startswith("copied"), "the child did not start copying"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    names = os.listdir(base)
    assert not [n for n in names if n.isdigit()], names
    atomic_push.publish(model, base, version=42)
    assert os.listdir(base) == ["42"]
    assert os.path.exists(os.path.join(base, "42", "saved_model.pb"))


class _FakeGcs:
    """Cloud Storage as TensorFlow's GCS filesystem shows it through tfx.dsl.io.fileio: a flat
    namespace of objects; a "directory" exists when an object has its name as a prefix (or a
    `dir/` placeholder object, which makedirs writes); there is no atomic directory rename."""

    objects: dict[str, bytes] = {}
    writes: list[str] = []

    @classmethod
    def reset(cls):
        cls.objects, cls.writes = {}, []

    @classmethod
    def _prefix(cls, path):
        return path.rstrip("/") + "/"

    @classmethod
    def open(cls, path, mode="r"):
        if "w" in mode:
            fake = cls

            class Writer(io.BytesIO):
                def close(self):
                    data = self.getvalue()
                    fake.objects[path] = data if isinstance(data, bytes) else data.encode()
                    fake.writes.append(path)
                    super().close()

            if "b" in mode:
                return Writer()
            return io.TextIOWrapper(Writer(), encoding="utf-8")
        if path not in cls.objects:
            raise fileio.NotFoundError(path)
        data = cls.objects[path]
        return io.BytesIO(data) if "b" in mode else io.StringIO(data.decode())

    @classmethod
    def exists(cls, path):
        return path in cls.objects or any(name.startswith(cls._prefix(path)) for name in cls.objects)

    @classmethod
    def isdir(cls, path):
        return any(name.startswith(cls._prefix(path)) for name in cls.objects)

    @classmethod
    def listdir(cls, path):
        prefix = cls._prefix(path)
        children = set()
        for name in cls.objects:
            if name.startswith(prefix) and name != prefix:
                rest = name[len(prefix):]
                children.add(rest.split("/")[0] + ("/" if "/" in rest else ""))
        return sorted(children)

    @classmethod
    def makedirs(cls, path):
        cls.objects.setdefault(cls._prefix(path), b"")

    @classmethod
    def copy(cls, src, dst, overwrite=False):
        cls.objects[dst] = cls.objects[src]
        cls.writes.append(dst)

    @classmethod
    def rmtree(cls, path):
        for name in [n for n in cls.objects if n.startswith(cls._prefix(path))]:
            del cls.objects[name]

    @classmethod
    def walk(cls, top, topdown=True, onerror=None):
        dirs = [c.rstrip("/") for c in cls.listdir(top) if c.endswith("/")]
        files = [c for c in cls.listdir(top) if not c.endswith("/")]
        yield top, dirs, files
        for d in dirs:
            yield from cls.walk(f"{top.rstrip('/')}/{d}")


@pytest.fixture
def fake_gcs(monkeypatch):
    _FakeGcs.reset()
    real = fileio._get_filesystem  # pylint: disable=protected-access
    monkeypatch.setattr(fileio, "_get_filesystem",
                        lambda path: _FakeGcs if str(path).startswith("gs://") else real(path))
    return _FakeGcs


def test_on_an_object_store_saved_model_pb_then_the_marker_come_last(tmp_path, fake_gcs):
    model = _fake_model(tmp_path / "model")
    # Debris of an interrupted push: a version without saved_model.pb.
    fake_gcs.objects["gs://b/serving/3/fingerprint.pb"] = b"x"
    version, path = atomic_push.publish(model, "gs://b/serving", version=9)
    assert (version, path) == ("9", "gs://b/serving/9")
    writes = [w[len(path) + 1:] for w in fake_gcs.writes if w.startswith(path + "/")]
    assert writes[-2:] == ["saved_model.pb", atomic_push.COMPLETE_MARKER]
    assert sorted(writes[:-2]) == sorted(k for k in _tree(model) if k != "saved_model.pb")
    assert not [n for n in fake_gcs.objects if n.startswith("gs://b/serving/3/")]
    atomic_push.publish(model, "gs://b/serving", version=9)
    assert fake_gcs.exists("gs://b/serving/9/saved_model.pb") and fake_gcs.exists("gs://b/serving/10/PUSH_COMPLETE")
