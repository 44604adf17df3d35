"""Choosing where to train: TPU, then GPUs, then the CPU, as run_pretraining.py does.

The original picks TPUEstimator when --use_tpu and a TPU resolves, else runs on one
device. Here a TPU is tried when asked for (--use_tpu), named in the environment
(TPU_NAME), or attached to this machine (a Cloud TPU VM, as Vertex AI's TPU training
runs on: its chips are local, so the resolver is `TPUClusterResolver(tpu="local")`,
not a TPU name). A TPU asked for and not reached is an error, never a fall-back to the
CPU: a paid TPU job would otherwise train on the CPU for hours. Likewise a Vertex AI job
compiled for GPUs (BERTPIPE_EXPECTED_ACCELERATOR, see accelerators.py) that sees fewer
than it pays for fails at once. Without any of these: GPUs if any (MirroredStrategy),
else the default strategy on the CPU.

Several workers (TF_CONFIG, or Vertex AI's CLUSTER_SPEC translated to it) select
MultiWorkerMirroredStrategy, with a timeout on its collectives so that a worker that
dies makes the others fail instead of waiting for it forever.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Callable, Optional

import tensorflow as tf

from components.trainer.accelerators import AcceleratorNotFound, expected_accelerator

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TpuAddress:
    """Where to find the TPU: the original's --tpu_name, --tpu_zone and --gcp_project."""

    name: Optional[str] = None
    zone: Optional[str] = None
    project: Optional[str] = None


LOCAL_TPU = "local"
# What a Cloud TPU VM has that other machines do not: the TPU runtime's environment
# (set on TPU VMs, including Vertex AI's) and the chips' device files (/dev/accel* up to
# v4, /dev/vfio/<n> from v5e on).
_TPU_VM_ENV = ("TPU_ACCELERATOR_TYPE", "TPU_WORKER_ID", "TPU_SKIP_MDS_QUERY")


def local_tpu_present(environ: Optional[dict] = None, dev_dir: str = "/dev") -> bool:
    """Whether this machine is a Cloud TPU VM (its TPU chips attached locally)."""
    environ = os.environ if environ is None else environ
    if any(environ.get(name) for name in _TPU_VM_ENV):
        return True
    try:
        if any(entry.startswith("accel") for entry in os.listdir(dev_dir)):
            return True
        return any(entry.isdigit() for entry in os.listdir(os.path.join(dev_dir, "vfio")))
    except OSError:
        return False


def tpu_address_from(use_tpu: bool, tpu_name: Optional[str], tpu_zone: Optional[str],
                     gcp_project: Optional[str], environ: Optional[dict] = None,
                     local_tpu: Optional[bool] = None) -> Optional[TpuAddress]:
    """The TPU to try, or None: flags first, then TPU_NAME / TPU_ZONE / GCP_PROJECT in the
    environment, then this machine's own TPU (a TPU VM: the resolver's "local")."""
    environ = os.environ if environ is None else environ
    name = tpu_name or environ.get("TPU_NAME")
    if not name:
        if local_tpu is None:
            local_tpu = local_tpu_present(environ)
        if local_tpu:
            return TpuAddress(name=LOCAL_TPU)
    if not use_tpu and not name:
        return None
    return TpuAddress(name=name or "", zone=tpu_zone or environ.get("TPU_ZONE"),
                      project=gcp_project or environ.get("GCP_PROJECT"))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def check_tpu_request(tpu: Optional[TpuAddress]) -> None:
    """AcceleratorNotFound when a TPU is asked for (--use_tpu) but none is named or attached:
    there is nothing to connect to (checked by `bertpipe run` before anything runs, too)."""
    if tpu is not None and not tpu.name:
        raise AcceleratorNotFound("--use_tpu: no TPU here to train on (no --tpu_name, no TPU_NAME, and this is "
                                  "not a Cloud TPU VM); give --tpu_name or run without --use_tpu.")


def _connect_tpu(address: TpuAddress) -> tf.distribute.Strategy:
    if address.name == LOCAL_TPU:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=LOCAL_TPU)
    else:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=address.name, zone=address.zone, project=address.project)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


# Vertex AI's CLUSTER_SPEC names worker pools by position; TensorFlow names tasks by role.
_POOL_ROLES = {"workerpool0": "chief", "workerpool1": "worker", "workerpool2": "ps", "workerpool3": "evaluator"}


def _load_json(environ: dict, name: str) -> Optional[dict]:
    if not environ.get(name):
        return None
    try:
        value = json.loads(environ[name])
    except json.JSONDecodeError as e:
        raise ValueError(f"{name} is not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object with 'cluster' and 'task', got {environ[name][:100]!r}")
    return value


def tf_config_from_environment(environ: Optional[dict] = None) -> Optional[dict]:
    """The TF_CONFIG dict ({"cluster": {role: [host:port]}, "task": {"type", "index"}}), or None.

    Vertex AI sets both TF_CONFIG and CLUSTER_SPEC; TF_CONFIG wins. With CLUSTER_SPEC
    alone (Vertex AI's form for any framework) its worker pools are translated to roles:
    workerpool0 -> chief, workerpool1 -> worker, workerpool2 -> ps, workerpool3 -> evaluator.
    """
    environ = os.environ if environ is None else environ
    tf_config = _load_json(environ, "TF_CONFIG")
    if tf_config is not None:
        return tf_config
    spec = _load_json(environ, "CLUSTER_SPEC")
    if spec is None:
        return None
    unknown = sorted(set(spec.get("cluster", {})) - set(_POOL_ROLES))
    if unknown:
        raise ValueError(f"CLUSTER_SPEC names unknown worker pools {unknown}; known: {sorted(_POOL_ROLES)}")
    task = spec.get("task", {})
    return {"cluster": {_POOL_ROLES[pool]: list(hosts) for pool, hosts in spec["cluster"].items() if hosts},
            "task": {"type": _POOL_ROLES.get(task.get("type"), task.get("type")), "index": int(task.get("index", 0))}}


def _workers_in_tf_config(environ: dict) -> int:
    cluster = (tf_config_from_environment(environ) or {}).get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def is_chief(environ: Optional[dict] = None) -> bool:
    """Whether this process writes the run's outputs: no cluster, the `chief` task, or worker 0
    of a cluster without a chief (TensorFlow's convention)."""
    tf_config = tf_config_from_environment(environ)
    if not tf_config:
        return True
    task = tf_config.get("task", {})
    kind, index = task.get("type"), int(task.get("index", 0))
    if kind == "chief":
        return True
    return kind == "worker" and index == 0 and "chief" not in tf_config.get("cluster", {})


def multi_worker_strategy(tf_config: dict, timeout_seconds: Optional[float]) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy over gRPC for `tf_config`'s cluster.

    `timeout_seconds` bounds every collective: when a worker dies the others' all-reduce
    fails after at most that long (TF's coordination service, missing the dead worker's
    heartbeats, often aborts it sooner) instead of blocking forever.
    """
    task = tf_config["task"]
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(tf_config["cluster"]), task_type=task["type"], task_id=int(task.get("index", 0)),
        rpc_layer="grpc")
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)


def select_strategy(
    tpu: Optional[TpuAddress],
    connect_tpu: Callable[[TpuAddress], tf.distribute.Strategy] = _connect_tpu,
    # Physical, not logical: listing logical devices starts TensorFlow's runtime, after which
    # MultiWorkerMirroredStrategy can no longer configure its collective ops.
    list_gpus: Callable[[], list] = lambda: tf.config.list_physical_devices("GPU"),
    environ: Optional[dict] = None,
    collective_timeout_seconds: Optional[float] = None,
    make_multi_worker: Callable[[dict, Optional[float]], tf.distribute.Strategy] = multi_worker_strategy,
) -> tf.distribute.Strategy:
    """TPUStrategy if `tpu` resolves, else multi-worker / multi-GPU mirrored, else the default.

    `connect_tpu`, `list_gpus` and `make_multi_worker` are parameters so tests can fake a
    TPU that fails to resolve, a machine with GPUs and a cluster.
    """
    environ = os.environ if environ is None else environ
    expected = expected_accelerator(environ)
    if expected is not None and expected.is_tpu and tpu is None:
        raise AcceleratorNotFound(f"The job was compiled for {expected.describe()} (bertpipe compile --trainer_tpu) "
                                  f"but this machine has no TPU (not a Cloud TPU VM, no TPU_NAME).")
    if tpu is not None:
        check_tpu_request(tpu)
        try:
            strategy = connect_tpu(tpu)
        except (ValueError, RuntimeError, tf.errors.OpError) as e:
            expected_text = f"{expected.describe()}, TPU {tpu.name!r}" if expected else f"TPU {tpu.name!r}"
            raise AcceleratorNotFound(f"Expected {expected_text} but could not reach it ({_first_line(e)}); "
                                      f"not training on the CPU instead.") from e
        logger.info("Training on TPU %r with %d replicas.", tpu.name, strategy.num_replicas_in_sync)
        return strategy
    gpus = list_gpus()
    if expected is not None and not expected.is_tpu and len(gpus) < expected.count:
        raise AcceleratorNotFound(f"The job was compiled for {expected.describe()} per machine (bertpipe compile "
                                  f"--trainer_gpu) but TensorFlow sees {len(gpus)} GPU(s): the image needs "
                                  f"TensorFlow's CUDA libraries and the machine its GPUs.")
    if _workers_in_tf_config(environ) > 1:
        tf_config = tf_config_from_environment(environ)
        logger.info("The cluster has %d workers (this is %s %s): MultiWorkerMirroredStrategy.",
                    _workers_in_tf_config(environ), tf_config["task"]["type"], tf_config["task"].get("index", 0))
        return make_multi_worker(tf_config, collective_timeout_seconds)
    if gpus:
        logger.info("Training on %d GPU(s) with MirroredStrategy.", len(gpus))
        return tf.distribute.MirroredStrategy()  # every local GPU
    logger.info("No TPU or GPU: training with the default strategy on the CPU.")
    return tf.distribute.get_strategy()


def strategy_kind(strategy: tf.distribute.Strategy) -> str:
    """'tpu', 'gpu' or 'cpu': what mixed-precision and steps_per_execution choices key on."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:  # The default strategy has no device list: it is one device.
        devices = ()
    if any("GPU" in d.upper() for d in devices):
        return "gpu"
    return "cpu"
