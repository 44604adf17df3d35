"""Faults at the pipeline level, with real `bertpipe run` processes: a second run while one
is going, a two-phase run killed during phase 2's training and its rerun, and what both leave
in $TMPDIR."""
from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
import time

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2

from conftest import TINY_RUN_FLAGS, corpus_slice as _corpus_slice

pytestmark = pytest.mark.e2e

BERTPIPE = os.path.join(os.path.dirname(sys.executable), "bertpipe")
# Two phases (pipeline/phases.py), killed in phase 2: the rerun resumes phase 1 at its last
# step (nothing left to train) and phase 2 from its checkpoint, which is the harder case
# (phase 1 exports a new Model artifact that phase 2 must not take for a new base); a kill in
# phase 1 resumes as a one-phase run does. Phase 2 has enough steps (a few seconds of
# training) that the kill lands well before the end.
PHASE1_STEPS = 30
NUM_TRAIN_STEPS = 1500
FAULT_FLAGS = list(TINY_RUN_FLAGS)
for flag, value in (("--num_train_steps", PHASE1_STEPS), ("--num_warmup_steps", 10),
                    ("--save_checkpoints_steps", 30), ("--iterations_per_loop", 30)):
    FAULT_FLAGS[FAULT_FLAGS.index(flag) + 1] = str(value)
FAULT_FLAGS += ["--phase2_max_seq_length", "64", "--phase2_max_predictions_per_seq", "10",
                "--phase2_num_train_steps", str(NUM_TRAIN_STEPS), "--phase2_num_warmup_steps", "10",
                "--phase2_train_batch_size", "4"]


def _start(out: str, corpus: str, tmpdir: str) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": tmpdir, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([BERTPIPE, "run", "--corpus", corpus, "--output_dir", out] + FAULT_FLAGS,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(predicate, timeout: float, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"the run ended ({process.returncode}) before {what}: "
                                 f"{process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def killed_then_rerun(tmp_path_factory):
    base = tmp_path_factory.mktemp("faults")
    out, tmpdir = str(base / "out"), str(base / "tmp")
    os.makedirs(tmpdir)
    corpus = _corpus_slice(str(base / "corpus.txt"))
    first = _start(out, corpus, tmpdir)
    try:
        lock = os.path.join(out, "metadata.sqlite.bertpipe-run.lock")
        _wait_for(lambda: os.path.exists(lock) and os.path.getsize(lock) > 0, 300, "run lock", first)
        second = _start(out, corpus, tmpdir)
        second_out, second_err = second.communicate(timeout=300)
        # <root>/checkpoints/<config hash>-phase2/run-<inputs hash>/checkpoint (see
        # BertTrainerExecutor); phase 1's directory has no suffix. The `checkpoint` state
        # file is a save's commit point: TF writes ckpt-N.index first and repoints the state
        # file after, so a kill in between leaves ckpt-N unused (the previous checkpoint, or
        # none, is the latest). Waiting for the index alone made the rerun's resume step a race.
        state_files = os.path.join(out, "tfx_root", "checkpoints", "*-phase2", "run-*", "checkpoint")
        _wait_for(lambda: glob.glob(state_files), 600, "phase 2 checkpoint", first)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    # Phase 2 saves every 30 steps, several times a second: read the latest after the kill.
    [state_file] = glob.glob(state_files)
    checkpoint_dir = os.path.dirname(state_file)
    with open(state_file) as f:
        killed_at = int(re.search(r'model_checkpoint_path: "ckpt-(\d+)"', f.read()).group(1))
    # A save killed half-way, as TF leaves it.
    os.makedirs(os.path.join(checkpoint_dir, f"ckpt-{killed_at + 30}_temp"))
    rerun = _start(out, corpus, tmpdir)
    rerun_out, rerun_err = rerun.communicate(timeout=900)
    return {"out": out, "tmpdir": tmpdir, "second": (second.returncode, second_out, second_err),
            "first_pid": first.pid, "killed_at": killed_at, "checkpoint_dir": checkpoint_dir,
            "rerun": (rerun.returncode, rerun_out, rerun_err)}


def test_a_second_run_on_the_same_output_dir_is_refused_at_once(killed_then_rerun):
    status, stdout, stderr = killed_then_rerun["second"]
    assert status == 2, stderr[-3000:]
    [line] = [l for l in stderr.splitlines() if "error:" in l]
    assert "another bertpipe run is using" in line and f"pid {killed_then_rerun['first_pid']}" in line
    assert "Traceback" not in stderr and stdout == ""


def test_the_rerun_resumes_training_reports_itself_and_cleans_up(killed_then_rerun):
    status, stdout, stderr = killed_then_rerun["rerun"]
    assert status == 0, stderr[-5000:]
    killed_at = killed_then_rerun["killed_at"]
    assert 0 < killed_at < NUM_TRAIN_STEPS
    # Phase 1 finished before the kill: it resumes at its last step, with nothing to train.
    assert re.search(rf"Resumed from \S*/checkpoints/[0-9a-f]+/run-\S*ckpt-{PHASE1_STEPS} at step {PHASE1_STEPS}\.",
                     stderr), stderr[-5000:]
    # Phase 2 resumes from the checkpoint it was killed after, in its own directory.
    assert re.search(rf"Resumed from \S*-phase2/run-\S*ckpt-{killed_at} at step {killed_at}\.", stderr), \
        stderr[-5000:]
    assert not glob.glob(os.path.join(killed_then_rerun["checkpoint_dir"], "*_temp"))
    run_id = re.search(r"Pipeline run (\S+) finished\.", stdout).group(1)
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = os.path.join(killed_then_rerun["out"], "metadata.sqlite")
    store = mlmd.MetadataStore(config)
    runs = store.get_contexts_by_type("pipeline_run")
    assert len(runs) == 2 and run_id == max(runs, key=lambda c: c.id).name
    # The killed run's Trainer execution no longer claims to be running.
    states = [e.last_known_state for e in store.get_executions()]
    assert metadata_store_pb2.Execution.RUNNING not in states
    assert metadata_store_pb2.Execution.CANCELED in states
    versions = os.listdir(os.path.join(killed_then_rerun["out"], "serving_model"))
    assert len(versions) == 1 and versions[0].isdigit()
    assert f"pushed to:        {os.path.join(killed_then_rerun['out'], 'serving_model', versions[0])}" in stdout


def test_runs_leave_nothing_in_tmpdir(killed_then_rerun):
    """The killed run's private temp directory is removed by the rerun; the rerun removes its own."""
    assert os.listdir(killed_then_rerun["tmpdir"]) == []
