"""Multi-worker training, really run: 2 worker processes, MultiWorkerMirroredStrategy over
gRPC on localhost ports (one CPU replica each), against one process on the same global batch.

Each worker reads the same seeded record stream and keeps its replica's half of every
global batch (components/trainer/input_pipeline.py), so the chief's weights after N
steps must equal those of a single process trained on the same global batch.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from components.trainer.run_fn import pretrain
from conftest import REPO_ROOT, TINY_PREDS, TINY_SEQ, tiny_bert_config
from trainer_helpers import split_files, tiny_params

pytestmark = pytest.mark.e2e

WORKER_SCRIPT = os.path.join(REPO_ROOT, "tests", "multiworker_worker.py")
TRAINING = dict(train_batch_size=8, eval_batch_size=8, learning_rate=1e-3, num_train_steps=4, num_warmup_steps=0,
                save_checkpoints_steps=2, iterations_per_loop=2, max_eval_steps=2, mixed_precision="float32")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(tmp_path, records: str, training: dict, vocab_file: str) -> list[dict]:
    """Starts a chief and a worker, each with its own output directories (so the test can
    see who wrote what) and its own TMPDIR (so it can see the scratch directory go)."""
    chief_port, worker_port = _free_ports(2)
    cluster = {"chief": [f"localhost:{chief_port}"], "worker": [f"localhost:{worker_port}"]}
    workers = []
    for role in ("chief", "worker"):
        root = tmp_path / role
        (root / "tmp").mkdir(parents=True)
        arguments = {
            "bert_config": tiny_bert_config(), "training": training, "max_seq_length": TINY_SEQ,
            "max_predictions_per_seq": TINY_PREDS, "checkpoint_dir": str(root / "ckpt"), "vocab_file": vocab_file,
            "train_files": split_files(records, "train"), "eval_files": split_files(records, "eval"),
            "serving_dir": str(root / "serving"), "model_run_dir": str(root / "run")}
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO_ROOT, os.path.join(REPO_ROOT, "tests")]),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": role, "index": 0}}),
               "TMPDIR": str(root / "tmp"), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
        log = open(root / "log.txt", "w")
        process = subprocess.Popen([sys.executable, WORKER_SCRIPT, json.dumps(arguments)], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        workers.append({"role": role, "root": root, "process": process, "log": log})
    return workers


def _log(worker) -> str:
    return (worker["root"] / "log.txt").read_text()


def _stop(workers) -> None:
    for w in workers:
        if w["process"].poll() is None:
            w["process"].kill()
        w["process"].wait()
        w["log"].close()


def _model_variables(checkpoint_dir) -> dict:
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(checkpoint_dir)))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.startswith("model/") and "OPTIMIZER_SLOT" not in name}


@pytest.fixture(scope="module")
def two_worker_run(independent_records, tiny_vocab_file, tmp_path_factory):
    """The 2-worker run and, while it runs, the single-process reference in this process."""
    tmp_path = tmp_path_factory.mktemp("multiworker")
    workers = _start_workers(tmp_path, independent_records, TRAINING, tiny_vocab_file)
    try:
        reference = tmp_path / "single"
        params = tiny_params(str(reference / "ckpt"), vocab_file=tiny_vocab_file, **TRAINING)
        pretrain(params, split_files(independent_records, "train"), split_files(independent_records, "eval"),
                 str(reference / "serving"), str(reference / "run"), strategy=tf.distribute.get_strategy())
        for w in workers:
            w["process"].wait(timeout=300)
    finally:
        _stop(workers)
    for w in workers:
        assert w["process"].returncode == 0, f"{w['role']} failed:\n{_log(w)[-3000:]}"
    return {"workers": {w["role"]: w["root"] for w in workers}, "reference": reference,
            "logs": {w["role"]: _log(w) for w in workers}}


def test_chief_weights_equal_one_process_on_the_same_global_batch(two_worker_run):
    assert "Strategy CollectiveAllReduceStrategy (cpu, 2 replicas)" in two_worker_run["logs"]["chief"]
    chief = _model_variables(two_worker_run["workers"]["chief"] / "ckpt")
    single = _model_variables(two_worker_run["reference"] / "ckpt")
    assert tf.train.latest_checkpoint(str(two_worker_run["workers"]["chief"] / "ckpt")).endswith("ckpt-4")
    assert set(chief) == set(single) and len(chief) > 20
    initial = tf.train.load_checkpoint(str(two_worker_run["reference"] / "ckpt" / "ckpt-2"))
    moved = 0
    for name, value in chief.items():
        np.testing.assert_allclose(value, single[name], rtol=1e-5, atol=1e-6, err_msg=name)
        moved += not np.allclose(initial.get_tensor(name), value)
    assert moved > 10  # steps 3-4 really changed the weights


def test_only_the_chief_writes_checkpoints_export_and_eval_results(two_worker_run):
    chief, worker = two_worker_run["workers"]["chief"], two_worker_run["workers"]["worker"]
    assert (chief / "serving" / "saved_model.pb").exists()
    assert (chief / "run" / "eval_results.txt").exists()
    assert (chief / "ckpt" / "bert_config.json").exists()
    for name in ("ckpt", "serving", "run"):
        assert not (worker / name).exists(), f"the non-chief worker wrote {name}"
    # The worker's own (collective) checkpoints went to a scratch directory it deleted.
    assert os.listdir(worker / "tmp") == []
    assert "METRICS" in two_worker_run["logs"]["worker"]


def test_a_killed_worker_fails_the_run_with_a_clear_error(independent_records, tiny_vocab_file, tmp_path):
    training = {**TRAINING, "num_train_steps": 100000, "iterations_per_loop": 1, "save_checkpoints_steps": 100000,
                "collective_timeout_seconds": 15.0}
    workers = _start_workers(tmp_path, independent_records, training, tiny_vocab_file)
    chief, worker = workers
    try:
        deadline = time.monotonic() + 240
        while "step 3/" not in _log(chief):
            assert chief["process"].poll() is None, f"chief ended early:\n{_log(chief)[-3000:]}"
            assert time.monotonic() < deadline, f"no training progress:\n{_log(chief)[-3000:]}"
            time.sleep(0.5)
        worker["process"].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        chief["process"].wait(timeout=120)  # bounded: the collective timeout is 15 s
        waited = time.monotonic() - killed_at
    finally:
        _stop(workers)
    log = _log(chief)
    assert chief["process"].returncode != 0
    assert "WorkerLostError: Another training worker stopped answering" in log, log[-3000:]
    assert waited < 120
