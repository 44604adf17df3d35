"""What a local run does about other runs and about what killed runs left: the run lock,
the private temp directory, stale staging directories, interrupted checkpoint saves,
executions left RUNNING in ML-metadata, and the run summary naming its own run."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2

from components.pretraining_data import staging
from components.trainer.training_loop import remove_interrupted_saves
from pipeline import interrupted_runs, private_tmp, run_lock, run_summary

_HOLD_LOCK = """
import sys, time
from pipeline import run_lock
with run_lock.hold(sys.argv[1:]):
    print("held", flush=True)
    time.sleep(120)
"""


def _child(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", *args], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def test_a_second_run_is_refused_naming_the_holder_and_a_killed_holder_frees_the_lock(tmp_path):
    store, root = str(tmp_path / "metadata.sqlite"), str(tmp_path / "tfx_root")
    holder = _child(_HOLD_LOCK, store, root)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(run_lock.RunInProgressError) as refused:
            with run_lock.hold([root, store]):
                pass
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and "--output_dir" in message and "\n" not in message
        holder.kill()  # SIGKILL: no clean-up code runs in the holder
        holder.wait(timeout=30)
        with run_lock.hold([store, root]):  # the kernel released the lock with the process
            pass
    finally:
        if holder.poll() is None:
            holder.kill()


def test_private_tmpdir_is_removed_and_restores_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    dead = tmp_path / f"{private_tmp.PREFIX}999999999-abc"  # no such pid
    dead.mkdir()
    (dead / "junk").write_text("x")
    alive = tmp_path / f"{private_tmp.PREFIX}{os.getppid()}-abc"
    alive.mkdir()
    with private_tmp.private_tmpdir() as path:
        assert os.environ["TMPDIR"] == path == tempfile.gettempdir()
        with open(os.path.join(tempfile.mkdtemp(), "f"), "w") as f:
            f.write("left behind by a library")
    assert os.environ["TMPDIR"] == str(tmp_path)
    assert sorted(os.listdir(tmp_path)) == [alive.name]


def test_stale_staging_of_a_dead_data_job_is_removed_a_live_ones_kept(tmp_path):
    out = str(tmp_path / "records")
    mine = staging.new_staging_dir(out)
    os.makedirs(mine)
    dead = mine.replace(f".staging-{os.getpid()}@", ".staging-999999999@")
    os.makedirs(dead)
    unknown = f"{out}.staging-0123456789ab"
    os.makedirs(unknown)
    assert staging.remove_stale(out) == [dead]
    assert os.path.isdir(mine) and os.path.isdir(unknown)


def test_interrupted_checkpoint_saves_are_removed(tmp_path):
    for name in ("ckpt-6_temp", "ckpt-12.index", "checkpoint"):
        path = tmp_path / name
        path.mkdir() if name.endswith("_temp") else path.write_text("x")
    (tmp_path / "ckpt-6_temp" / "part-00000-of-00001.data-00000-of-00001").write_text("x")
    assert remove_interrupted_saves(str(tmp_path)) == [str(tmp_path / "ckpt-6_temp")]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "ckpt-12.index"]


def _store_with_two_runs(path: str):
    """A store shaped as TFX writes it: pipeline context, run contexts as its children,
    and per run a Model, ModelEvaluation, ModelBlessing and PushedModel."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    store = mlmd.MetadataStore(config)
    ctx_types = {name: store.put_context_type(metadata_store_pb2.ContextType(name=name))
                 for name in ("pipeline", "pipeline_run")}
    art_types = {name: store.put_artifact_type(metadata_store_pb2.ArtifactType(name=name))
                 for name in ("Model", "ModelEvaluation", "ModelBlessing", "PushedModel")}
    exec_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
    [pipeline] = store.put_contexts([metadata_store_pb2.Context(type_id=ctx_types["pipeline"], name="p")])
    runs = {}
    for run_id in ("run-a", "run-b"):
        [run] = store.put_contexts([metadata_store_pb2.Context(type_id=ctx_types["pipeline_run"], name=run_id)])
        store.put_parent_contexts([metadata_store_pb2.ParentContext(child_id=run, parent_id=pipeline)])
        artifacts = []
        for name, uri in (("Model", f"/m/{run_id}"), ("ModelEvaluation", f"/e/{run_id}"),
                          ("ModelBlessing", f"/b/{run_id}"), ("PushedModel", f"/p/{run_id}")):
            artifact = metadata_store_pb2.Artifact(type_id=art_types[name], uri=uri)
            if name == "ModelBlessing":
                artifact.custom_properties["blessed"].int_value = 1
            if name == "PushedModel":
                artifact.custom_properties["pushed"].int_value = 1
                artifact.custom_properties["pushed_destination"].string_value = f"/serving/{run_id}"
            artifacts.append(artifact)
        ids = store.put_artifacts(artifacts)
        execution = metadata_store_pb2.Execution(type_id=exec_type,
                                                 last_known_state=metadata_store_pb2.Execution.RUNNING)
        [execution_id] = store.put_executions([execution])
        for context in (pipeline, run):
            store.put_attributions_and_associations(
                [metadata_store_pb2.Attribution(context_id=context, artifact_id=i) for i in ids],
                [metadata_store_pb2.Association(context_id=context, execution_id=execution_id)])
        runs[run_id] = execution_id
    return config, runs


def test_executions_a_killed_run_left_running_are_canceled(tmp_path):
    config, runs = _store_with_two_runs(str(tmp_path / "m.sqlite"))
    assert sorted(interrupted_runs.cancel_unfinished_executions(config, "p")) == sorted(runs.values())
    store = mlmd.MetadataStore(config)
    states = {e.last_known_state for e in store.get_executions()}
    assert states == {metadata_store_pb2.Execution.CANCELED}
    assert interrupted_runs.cancel_unfinished_executions(config, "p") == []
    assert interrupted_runs.cancel_unfinished_executions(config, "another-pipeline") == []


_TRY_LOCK = """
import sys
from pipeline import run_lock
try:
    with run_lock.hold(sys.argv[1:]):
        print("got it")
except run_lock.RunInProgressError:
    print("refused")
"""


def test_the_lock_is_reentrant_in_one_process_and_held_until_the_outer_block_ends(tmp_path):
    """The CLI locks before its imports and run_local locks again: the process must not refuse
    itself, and the inner block's end must not free what the outer block still holds."""
    store = str(tmp_path / "metadata.sqlite")

    def other_process_gets_it() -> bool:
        result = subprocess.run([sys.executable, "-c", _TRY_LOCK, store], capture_output=True, text=True,
                                timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        return result.stdout.strip() == "got it"

    with run_lock.hold([store]):
        with run_lock.hold([store, str(tmp_path / "root")]):
            pass
        assert not other_process_gets_it()
    assert other_process_gets_it()


_HOLD_RUN_LOCKS = """
import sys, time
from pipeline.local_paths import LocalPaths, locked_locations
from pipeline import run_lock
with run_lock.hold(locked_locations(LocalPaths.under(sys.argv[1], pipeline_root=sys.argv[2]))):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize("store", ["another SQLite file", "MySQL"])
def test_a_run_sharing_the_pipeline_root_is_refused_whatever_its_store(store, tmp_path, capsys):
    """Two runs with their own metadata stores but one --pipeline_root would share records,
    checkpoints and artifact directories: the second `bertpipe run` is refused, before it
    imports the pipeline or touches its store."""
    from pipeline import cli

    root = str(tmp_path / "shared_root")
    holder = _child(_HOLD_RUN_LOCKS, str(tmp_path / "first"), root)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = tmp_path / "second"
        where = (["--metadata_path", str(second / "metadata.sqlite")] if store != "MySQL" else
                 ["--metadata_mysql_database", "mlmd", "--metadata_mysql_port", "1"])
        # A corpus that is not there: were the lock not taken, the run would stop on it instead.
        status = cli.main(["run", "--output_dir", str(second), "--pipeline_root", root,
                           "--corpus", str(tmp_path / "no_corpus.txt")] + where)
        err = capsys.readouterr().err
        assert status == 2
        assert f"another bertpipe run is using {root} (pid {holder.pid}" in err, err
        assert not (second / "metadata.sqlite").exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)
