"""Strategy and precision choice: TPU -> GPU -> CPU, with the resolver faked."""
from __future__ import annotations

import pytest
import tensorflow as tf

from components.trainer import precision, strategy


class FakeTpuStrategy:
    num_replicas_in_sync = 8


def test_no_tpu_asked_gives_default_strategy_on_cpu():
    chosen = strategy.select_strategy(None, list_gpus=lambda: [], environ={})
    assert chosen is tf.distribute.get_strategy()
    assert strategy.strategy_kind(chosen) == "cpu"


def test_reachable_tpu_is_used():
    address = strategy.TpuAddress(name="my-tpu", zone="us-central1-a", project="p")
    seen = []
    chosen = strategy.select_strategy(address, connect_tpu=lambda a: seen.append(a) or FakeTpuStrategy(),
                                      list_gpus=lambda: [], environ={})
    assert isinstance(chosen, FakeTpuStrategy) and seen == [address]


def test_unreachable_tpu_falls_back_to_gpus_then_cpu():
    def failing(_):
        raise ValueError("Could not lookup TPU metadata")

    address = strategy.TpuAddress(name="gone")
    # "GPUs": the two logical CPU devices conftest made stand in for them.
    gpus = [tf.config.LogicalDevice("/device:CPU:0", "CPU"), tf.config.LogicalDevice("/device:CPU:1", "CPU")]
    chosen = strategy.select_strategy(address, connect_tpu=failing, list_gpus=lambda: gpus, environ={})
    assert isinstance(chosen, tf.distribute.MirroredStrategy) and chosen.num_replicas_in_sync == 2
    chosen = strategy.select_strategy(address, connect_tpu=failing, list_gpus=lambda: [], environ={})
    assert chosen is tf.distribute.get_strategy()


def test_tpu_address_from_flags_then_environment():
    assert strategy.tpu_address_from(False, None, None, None, environ={}) is None
    assert strategy.tpu_address_from(True, "t1", "z", "p", environ={}) == strategy.TpuAddress("t1", "z", "p")
    env = {"TPU_NAME": "t2", "TPU_ZONE": "z2", "GCP_PROJECT": "p2"}
    assert strategy.tpu_address_from(False, None, None, None, environ=env) == strategy.TpuAddress("t2", "z2", "p2")


def test_tf_config_worker_count():
    assert strategy._workers_in_tf_config({}) == 0
    env = {"TF_CONFIG": '{"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "chief"}}'}
    assert strategy._workers_in_tf_config(env) == 3
    with pytest.raises(ValueError, match="TF_CONFIG"):
        strategy._workers_in_tf_config({"TF_CONFIG": "{nope"})


@pytest.mark.parametrize("requested,kind,cpu_bf16,expected", [
    ("auto", "tpu", False, "mixed_bfloat16"),
    ("auto", "gpu", False, "mixed_float16"),
    ("auto", "cpu", True, "mixed_bfloat16"),
    ("auto", "cpu", False, "float32"),
    ("float32", "tpu", False, "float32"),
    ("bfloat16", "cpu", False, "mixed_bfloat16"),
])
def test_precision_choice(requested, kind, cpu_bf16, expected):
    assert precision.choose_precision(requested, kind, cpu_bf16=cpu_bf16) == expected


def test_float16_on_tpu_is_refused():
    with pytest.raises(ValueError, match="bfloat16"):
        precision.choose_precision("float16", "tpu")


def test_cpu_bf16_detection_reads_cpu_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert precision.cpu_has_native_bf16(str(info))
    info.write_text("flags\t\t: fpu avx2\n")
    assert not precision.cpu_has_native_bf16(str(info))
