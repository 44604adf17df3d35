"""prepare-data on an object store (gs://-like), through Beam's FileSystems boundary.

GCS cannot be reached here, so `fakegs://` is a Beam FileSystem with the semantics of
Beam's own GCSFileSystem (apache_beam/io/gcp/gcsfilesystem.py and gcsio.py), kept in a
temp dir: flat object names and no directories (has_dirs False, mkdirs does nothing);
listing is by name prefix; `exists` asks for an object of exactly that name (so
`exists("dir/")` is False: GCS has no directory objects); `delete("dir/")` deletes what
`match("dir/*")` finds, one level (`*` does not cross "/"), and a missing object is no
error (a 404 is ignored); `rename` is copy then delete, object by object, and fails for a
missing source. The job must read its input, stage, clean up and publish its output with
those semantics alone.
"""
import glob
import os
import shutil

import pytest
from apache_beam.io.filesystem import BeamIOError, FileMetadata
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem

from components.pretraining_data import beam_job
from components.pretraining_data.options import PretrainingDataOptions

from test_pretraining_fixtures import corpus_text, write_vocab

SCHEME = "fakegs://"
OPTIONS = PretrainingDataOptions(max_seq_length=32, max_predictions_per_seq=5, dupe_factor=2,
                                 num_shards=2, eval_fraction=0.3)
THREADS = ["--direct_num_workers=2", "--direct_running_mode=multi_threading"]


class FakeObjectStore(LocalFileSystem):
    """Objects under ROOT; registered with Beam by subclassing (scheme "fakegs")."""

    ROOT = None

    @classmethod
    def scheme(cls):
        return "fakegs"

    def _local(self, path):
        assert path.startswith(SCHEME), path
        return os.path.join(self.ROOT, path[len(SCHEME):])

    def _remote(self, local):
        return SCHEME + os.path.relpath(local, self.ROOT)

    def has_dirs(self):
        return False

    def mkdirs(self, path):
        pass  # no directories in an object store

    def create(self, path, *args, **kwargs):
        local = self._local(path)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        return super().create(local, *args, **kwargs)

    def open(self, path, *args, **kwargs):
        return super().open(self._local(path), *args, **kwargs)

    def _objects(self):
        for d, _, files in os.walk(self.ROOT):
            for f in files:
                yield os.path.join(d, f)

    def _list(self, prefix):
        for local in self._objects():
            name = self._remote(local)
            if name.startswith(prefix):
                yield FileMetadata(name, os.path.getsize(local), os.path.getmtime(local))

    def exists(self, path):
        # gcsio.exists: the object of exactly that name (a "dir/" is never one).
        return os.path.isfile(self._local(path)) and not path.endswith("/")

    def metadata(self, path):
        if not self.exists(path):
            raise BeamIOError("Metadata operation failed", {path: FileNotFoundError(path)})
        local = self._local(path)
        return FileMetadata(path, os.path.getsize(local), os.path.getmtime(local))

    def size(self, path):
        return self.metadata(path).size_in_bytes

    def delete(self, paths):
        # GCSFileSystem.delete: "dir/" becomes the pattern "dir/*" (one level), any other path
        # is matched as given; gcsio.delete_batch ignores objects that are not there (404).
        for path in paths:
            pattern = path + "*" if path.endswith("/") else path
            for m in self.match([pattern])[0].metadata_list:
                os.remove(self._local(m.path))

    def rename(self, sources, destinations):
        for source, destination in zip(sources, destinations):
            if not self.exists(source):  # copy_batch fails: objects only, no directories
                raise BeamIOError("Rename operation failed", {(source, destination): FileNotFoundError(source)})
            target = self._local(destination)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(self._local(source), target)
            os.remove(self._local(source))


@pytest.fixture
def store(tmp_path):
    FakeObjectStore.ROOT = str(tmp_path / "bucket")
    os.makedirs(FakeObjectStore.ROOT)
    yield FakeObjectStore.ROOT
    FakeObjectStore.ROOT = None


def _put(local_path, name):
    with FileSystems.create(SCHEME + name) as f:
        f.write(open(local_path, "rb").read())
    return SCHEME + name


def _objects(root, prefix=""):
    return sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "**"),
                                                              recursive=True)
                  if os.path.isfile(p) and os.path.relpath(p, root).startswith(prefix))


def test_the_fake_answers_as_beams_gcs_filesystem(store, tmp_path):
    for name in ("d/a", "d/b", "d/sub/c", "dx"):
        with FileSystems.create(SCHEME + name) as f:
            f.write(b"x")
    assert FileSystems.exists(SCHEME + "d/a") and not FileSystems.exists(SCHEME + "d/")
    assert not FileSystems.exists(SCHEME + "d")
    assert sorted(m.path for m in FileSystems.match([SCHEME + "d/**"])[0].metadata_list) == [
        SCHEME + "d/a", SCHEME + "d/b", SCHEME + "d/sub/c"]
    FileSystems.delete([SCHEME + "d/"])  # one level, as "d/*"
    assert _objects(store) == ["d/sub/c", "dx"]
    FileSystems.delete([SCHEME + "gone"])  # a missing object is no error
    with pytest.raises(BeamIOError):
        FileSystems.rename([SCHEME + "d/sub/"], [SCHEME + "e/"])


def test_job_reads_stages_and_publishes_on_an_object_store(store, tmp_path):
    (tmp_path / "corpus.txt").write_text(corpus_text(40, seed=3))
    vocab = write_vocab(tmp_path / "vocab.txt")
    local_out = str(tmp_path / "local_records")
    local_stats = beam_job.run_prepare_data([str(tmp_path / "corpus.txt")], vocab, local_out,
                                            OPTIONS, THREADS)
    _put(tmp_path / "corpus.txt", "data/corpus.txt")
    remote_vocab = _put(vocab, "data/vocab.txt")

    stats = beam_job.run_prepare_data([SCHEME + "data/corp*.txt"], remote_vocab,
                                      SCHEME + "out/records", OPTIONS, THREADS)

    assert {k: v for k, v in stats.items() if k != "seconds"} == {
        k: v for k, v in local_stats.items() if k != "seconds"}
    published = _objects(store, "out/")
    assert published == ["out/records/eval/part-00000-of-00002.tfrecord",
                         "out/records/eval/part-00001-of-00002.tfrecord",
                         "out/records/manifest.json",
                         "out/records/train/part-00000-of-00002.tfrecord",
                         "out/records/train/part-00001-of-00002.tfrecord"]
    for split in ("train", "eval"):  # the same bytes as on a local disk
        for shard in range(2):
            name = beam_job.shard_name(split, shard, 2)
            assert (open(os.path.join(store, "out/records", name), "rb").read()
                    == open(os.path.join(local_out, name), "rb").read())
    # Nothing staged is left behind: no spill, piece or statistics objects.
    assert _objects(store) == ["data/corpus.txt", "data/vocab.txt"] + published


def test_rerun_replaces_every_old_object_and_a_failure_leaves_the_old_output(store, tmp_path):
    (tmp_path / "corpus.txt").write_text(corpus_text(30, seed=4))
    corpus = _put(tmp_path / "corpus.txt", "data/corpus.txt")
    vocab = _put(write_vocab(tmp_path / "vocab.txt"), "data/vocab.txt")
    out = SCHEME + "out/records"
    beam_job.run_prepare_data([corpus], vocab, out, OPTIONS, THREADS)
    three = PretrainingDataOptions(**{**OPTIONS.__dict__, "num_shards": 3})
    beam_job.run_prepare_data([corpus], vocab, out, three, THREADS)
    names = _objects(store, "out/")
    assert [n for n in names if n.endswith(".tfrecord")] == [
        f"out/records/{split}/part-0000{i}-of-00003.tfrecord"
        for split in ("eval", "train") for i in range(3)]

    (tmp_path / "empty.txt").write_text("")
    empty = _put(tmp_path / "empty.txt", "data/empty.txt")
    with pytest.raises(ValueError, match=r"empty \(0 bytes\)"):
        beam_job.run_prepare_data([empty], vocab, out, OPTIONS, THREADS)
    assert _objects(store, "out/") == names  # the previous output, untouched
    assert not [n for n in _objects(store) if ".staging-" in n]
