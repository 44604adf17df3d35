"""An in-memory stand-in for Beam's GcsIO (apache_beam/io/gcp/gcsio.py), the client boundary
Beam's GCSFileSystem calls for every gs:// operation (GCS cannot be reached here).

It keeps GCS's semantics as gcsio.py states them: objects are flat names in buckets, with no
directories; `list_files(prefix)` lists every object whose name starts with the prefix (all
"levels"); `exists`, `size` and `open("rb")` want an object of exactly that name (NotFound
otherwise); an object written through `open("wb")` appears only when the writer is closed;
`delete_batch` reports a missing object as no error (GCS's 404 is ignored there);
`copy_batch` reports a missing source as a 404 for that pair. Installed with `install`,
which replaces GCSFileSystem._gcsIO for the test.
"""
from __future__ import annotations

import io
import threading
import time
import zlib

from apache_beam.io.gcp import gcsfilesystem, gcsio


class NotFound(Exception):
    """What google.api_core raises for a missing object (gcsio catches its own import of it)."""


class _Writer(io.BytesIO):
    def __init__(self, store: "FakeGcs", path: str):
        super().__init__()
        self._store, self._path = store, path

    def close(self):
        if not self.closed:
            self._store.put(self._path, self.getvalue())
        super().close()


class FakeGcs:
    """Objects {gs://bucket/name: (bytes, updated)} shared by every GcsIO the test creates."""

    def __init__(self):
        self.objects: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    # -- the store ----------------------------------------------------------------------
    def put(self, path: str, data: bytes) -> None:
        gcsio.parse_gcs_path(path)  # refuses a bucket without an object name, as GCS does
        with self._lock:
            self.objects[path] = (bytes(data), time.time())

    def _get(self, path: str) -> tuple[bytes, float]:
        with self._lock:
            if path not in self.objects:
                raise NotFound(path)
            return self.objects[path]

    # -- GcsIO's methods, as GCSFileSystem calls them ------------------------------------
    def list_files(self, path, with_metadata=False):
        with self._lock:
            names = sorted(p for p in self.objects if p.startswith(path))
            items = [(p, (len(self.objects[p][0]), self.objects[p][1])) for p in names]
        for name, metadata in items:
            yield (name, metadata) if with_metadata else (name, metadata[0])

    def open(self, filename, mode="r", read_buffer_size=None, mime_type=None):
        if mode in ("r", "rb"):
            return io.BytesIO(self._get(filename)[0])
        if mode in ("w", "wb"):
            gcsio.parse_gcs_path(filename)
            return _Writer(self, filename)
        raise ValueError(f"Invalid file open mode: {mode}.")

    def exists(self, path):
        try:
            self._get(path)
            return True
        except NotFound:
            return False

    def size(self, path):
        return len(self._get(path)[0])

    def last_updated(self, path):
        return self._get(path)[1]

    def checksum(self, path):
        return str(zlib.crc32(self._get(path)[0]))

    def _status(self, path):
        data, updated = self._get(path)
        return {"size": len(data), "updated": updated, "checksum": str(zlib.crc32(data))}

    def delete_batch(self, paths):
        with self._lock:
            for path in paths:
                self.objects.pop(path, None)  # a missing object is no error (404 ignored)
        return [(path, None) for path in paths]

    def copy_batch(self, src_dest_pairs):
        results = []
        for src, dest in src_dest_pairs:
            try:
                self.put(dest, self._get(src)[0])
                results.append((src, dest, None))
            except NotFound:
                results.append((src, dest, 404))
        return results

    def copy(self, src, dest):
        self.put(dest, self._get(src)[0])

    def copytree(self, src, dest):
        for name, _ in list(self.list_files(src)):
            self.copy(name, dest + name[len(src):])


def install(monkeypatch) -> FakeGcs:
    """Routes every gs:// operation of Beam's FileSystems in this process to one FakeGcs."""
    store = FakeGcs()
    monkeypatch.setattr(gcsfilesystem.GCSFileSystem, "_gcsIO", lambda self: store)
    return store
