"""Choosing where to train: TPU, then GPUs, then the CPU, as run_pretraining.py does.

The original picks TPUEstimator when --use_tpu and a TPU resolves, else runs on one
device. Here a TPU is tried when asked for (--use_tpu) or named in the environment
(TPU_NAME, as on Vertex AI TPU workers); if it cannot be reached the run falls back
to GPUs (MirroredStrategy) and then the default strategy, saying so in the log.
TF_CONFIG with more than one worker selects MultiWorkerMirroredStrategy.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Callable, Optional

import tensorflow as tf

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TpuAddress:
    """Where to find the TPU: the original's --tpu_name, --tpu_zone and --gcp_project."""

    name: Optional[str] = None
    zone: Optional[str] = None
    project: Optional[str] = None


def tpu_address_from(use_tpu: bool, tpu_name: Optional[str], tpu_zone: Optional[str],
                     gcp_project: Optional[str], environ: Optional[dict] = None) -> Optional[TpuAddress]:
    """The TPU to try, or None: flags first, then TPU_NAME / TPU_ZONE / GCP_PROJECT in the environment."""
    environ = os.environ if environ is None else environ
    name = tpu_name or environ.get("TPU_NAME")
    if not use_tpu and not name:
        return None
    return TpuAddress(name=name or "", zone=tpu_zone or environ.get("TPU_ZONE"),
                      project=gcp_project or environ.get("GCP_PROJECT"))


def _connect_tpu(address: TpuAddress) -> tf.distribute.Strategy:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu=address.name, zone=address.zone, project=address.project)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _workers_in_tf_config(environ: dict) -> int:
    try:
        cluster = json.loads(environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from e
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def select_strategy(
    tpu: Optional[TpuAddress],
    connect_tpu: Callable[[TpuAddress], tf.distribute.Strategy] = _connect_tpu,
    list_gpus: Callable[[], list] = lambda: tf.config.list_logical_devices("GPU"),
    environ: Optional[dict] = None,
) -> tf.distribute.Strategy:
    """TPUStrategy if `tpu` resolves, else multi-worker / multi-GPU mirrored, else the default.

    `connect_tpu` and `list_gpus` are parameters so tests can fake a TPU that fails to
    resolve and a machine with GPUs.
    """
    environ = os.environ if environ is None else environ
    if tpu is not None:
        try:
            strategy = connect_tpu(tpu)
            logger.info("Training on TPU %r with %d replicas.", tpu.name, strategy.num_replicas_in_sync)
            return strategy
        except (ValueError, RuntimeError, tf.errors.OpError) as e:
            logger.warning("TPU %r could not be reached (%s); falling back to GPU/CPU.", tpu.name, e)
    if _workers_in_tf_config(environ) > 1:
        logger.info("TF_CONFIG names several workers: MultiWorkerMirroredStrategy.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = list_gpus()
    if gpus:
        logger.info("Training on %d GPU(s) with MirroredStrategy.", len(gpus))
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
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
