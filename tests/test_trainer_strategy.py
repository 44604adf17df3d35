"""Strategy and precision choice: TPU -> GPU -> CPU, with the resolver faked; an accelerator asked for
and missing is an error, never a quiet fall-back to the CPU."""
from __future__ import annotations

import pytest
import tensorflow as tf

from components.trainer import precision, strategy
from components.trainer.accelerators import EXPECTED_ACCELERATOR_ENV, AcceleratorNotFound


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


def test_unreachable_tpu_is_one_line_error_not_a_cpu_fallback():
    def failing(_):
        raise ValueError("Could not lookup TPU metadata\n(and a long trace)")

    address = strategy.TpuAddress(name="gone")
    # "GPUs": the two logical CPU devices conftest made stand in for them: still not used instead.
    gpus = [tf.config.LogicalDevice("/device:CPU:0", "CPU"), tf.config.LogicalDevice("/device:CPU:1", "CPU")]
    with pytest.raises(AcceleratorNotFound) as caught:
        strategy.select_strategy(address, connect_tpu=failing, list_gpus=lambda: gpus, environ={})
    message = str(caught.value)
    assert "\n" not in message and "TPU 'gone'" in message and "Could not lookup TPU metadata" in message
    compiled_for = {EXPECTED_ACCELERATOR_ENV: "TPU_V5_LITEPOD:4"}
    with pytest.raises(AcceleratorNotFound, match=r"Expected 4 x TPU_V5_LITEPOD, TPU 'gone'"):
        strategy.select_strategy(address, connect_tpu=failing, list_gpus=lambda: [], environ=compiled_for)


def test_use_tpu_with_no_tpu_anywhere_is_refused():
    nothing = strategy.tpu_address_from(True, None, None, None, environ={}, local_tpu=False)
    with pytest.raises(AcceleratorNotFound, match="--use_tpu: no TPU here"):
        strategy.select_strategy(nothing, connect_tpu=lambda a: FakeTpuStrategy(), list_gpus=lambda: [], environ={})


def test_a_job_compiled_for_accelerators_refuses_to_train_without_them():
    gpu = tf.config.LogicalDevice("/device:CPU:0", "CPU")  # stands in for one GPU
    two_v100 = {EXPECTED_ACCELERATOR_ENV: "NVIDIA_TESLA_V100:2"}
    with pytest.raises(AcceleratorNotFound, match=r"compiled for 2 x NVIDIA_TESLA_V100 .* sees 1 GPU"):
        strategy.select_strategy(None, list_gpus=lambda: [gpu], environ=two_v100)
    # Also on a multi-worker job, before its strategy is made.
    cluster = dict(two_v100, TF_CONFIG='{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}')
    with pytest.raises(AcceleratorNotFound):
        strategy.select_strategy(None, list_gpus=lambda: [], environ=cluster, make_multi_worker=lambda *a: "made")
    with pytest.raises(AcceleratorNotFound, match=r"compiled for 4 x TPU_V5_LITEPOD .* no TPU"):
        strategy.select_strategy(None, list_gpus=lambda: [gpu], environ={EXPECTED_ACCELERATOR_ENV: "TPU_V5_LITEPOD:4"})
    two = [gpu, tf.config.LogicalDevice("/device:CPU:1", "CPU")]
    chosen = strategy.select_strategy(None, list_gpus=lambda: two,
                                      environ={EXPECTED_ACCELERATOR_ENV: "NVIDIA_TESLA_V100:2"})
    assert isinstance(chosen, tf.distribute.MirroredStrategy)
    with pytest.raises(ValueError, match="expected TYPE:COUNT"):
        strategy.select_strategy(None, list_gpus=lambda: [], environ={EXPECTED_ACCELERATOR_ENV: "V100"})


def test_tpu_address_from_flags_then_environment():
    assert strategy.tpu_address_from(False, None, None, None, environ={}, local_tpu=False) is None
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


VERTEX_CLUSTER_SPEC = ('{"cluster": {"workerpool0": ["cmle-training-workerpool0-ab-0:2222"], '
                       '"workerpool1": ["cmle-training-workerpool1-ab-0:2222", "cmle-training-workerpool1-ab-1:2222"]}, '
                       '"environment": "cloud", "task": {"type": "workerpool1", "index": 1}, "job": "{}"}')


def test_vertex_cluster_spec_alone_is_translated_to_tf_config():
    tf_config = strategy.tf_config_from_environment({"CLUSTER_SPEC": VERTEX_CLUSTER_SPEC})
    assert tf_config == {"cluster": {"chief": ["cmle-training-workerpool0-ab-0:2222"],
                                     "worker": ["cmle-training-workerpool1-ab-0:2222",
                                                "cmle-training-workerpool1-ab-1:2222"]},
                         "task": {"type": "worker", "index": 1}}
    assert strategy._workers_in_tf_config({"CLUSTER_SPEC": VERTEX_CLUSTER_SPEC}) == 3
    # Vertex AI sets both for TensorFlow; TF_CONFIG wins.
    both = {"CLUSTER_SPEC": VERTEX_CLUSTER_SPEC, "TF_CONFIG": '{"cluster": {"worker": ["a:1"]}, "task": {}}'}
    assert strategy.tf_config_from_environment(both)["cluster"] == {"worker": ["a:1"]}
    with pytest.raises(ValueError, match="CLUSTER_SPEC names unknown worker pools"):
        strategy.tf_config_from_environment({"CLUSTER_SPEC": '{"cluster": {"pool9": ["a:1"]}, "task": {}}'})
    with pytest.raises(ValueError, match="CLUSTER_SPEC is not valid JSON"):
        strategy.tf_config_from_environment({"CLUSTER_SPEC": "{"})


def test_chief_is_the_chief_task_or_worker_zero_without_one():
    assert strategy.is_chief({})
    chief = '{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "chief", "index": 0}}'
    worker0 = '{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}'
    chiefless = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}'
    assert strategy.is_chief({"TF_CONFIG": chief})
    assert not strategy.is_chief({"TF_CONFIG": worker0})
    assert strategy.is_chief({"TF_CONFIG": chiefless})
    assert not strategy.is_chief({"CLUSTER_SPEC": VERTEX_CLUSTER_SPEC})


def test_several_workers_select_multi_worker_strategy_with_the_collective_timeout():
    seen = []
    fake = object()
    chosen = strategy.select_strategy(None, list_gpus=lambda: [], environ={"CLUSTER_SPEC": VERTEX_CLUSTER_SPEC},
                                      collective_timeout_seconds=42.0,
                                      make_multi_worker=lambda config, timeout: seen.append((config, timeout)) or fake)
    assert chosen is fake
    [(config, timeout)] = seen
    assert timeout == 42.0 and config["task"] == {"type": "worker", "index": 1}


def test_local_tpu_vm_is_detected_from_its_environment_or_devices(tmp_path):
    assert strategy.local_tpu_present({"TPU_ACCELERATOR_TYPE": "v5litepod-4"}, dev_dir=str(tmp_path))
    assert not strategy.local_tpu_present({}, dev_dir=str(tmp_path))
    (tmp_path / "vfio").mkdir()
    (tmp_path / "vfio" / "vfio").touch()  # the VFIO control node exists on any VFIO host
    assert not strategy.local_tpu_present({}, dev_dir=str(tmp_path))
    (tmp_path / "vfio" / "0").touch()  # a v5e chip
    assert strategy.local_tpu_present({}, dev_dir=str(tmp_path))
    (tmp_path / "vfio" / "0").unlink()
    (tmp_path / "accel0").touch()  # a v2-v4 chip
    assert strategy.local_tpu_present({}, dev_dir=str(tmp_path))


def test_on_a_tpu_vm_the_resolver_is_the_local_tpu_not_a_name(monkeypatch):
    address = strategy.tpu_address_from(False, None, None, None, environ={}, local_tpu=True)
    assert address == strategy.TpuAddress(name="local")
    # A named TPU (flag or TPU_NAME) still wins over the local one.
    assert strategy.tpu_address_from(True, "pod", None, None, environ={}, local_tpu=True).name == "pod"
    assert strategy.tpu_address_from(True, None, None, None, environ={}, local_tpu=False).name == ""

    made = []

    class FakeResolver:
        def __init__(self, **kwargs):
            made.append(kwargs)
            raise ValueError("no TPU here")

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", FakeResolver)
    with pytest.raises(AcceleratorNotFound, match="TPU 'local'"):  # unreachable: an error, not the CPU
        strategy.select_strategy(address, list_gpus=lambda: [], environ={})
    assert made == [{"tpu": "local"}]


def test_bertpipe_run_use_tpu_without_a_tpu_is_one_line_before_anything_runs(tmp_path, monkeypatch, capsys):
    from pipeline import cli  # pylint: disable=import-outside-toplevel

    monkeypatch.delenv("TPU_NAME", raising=False)
    monkeypatch.setattr(strategy, "local_tpu_present", lambda environ=None: False)
    assert cli.main(["run", "--use_tpu", "--output_dir", str(tmp_path / "out")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("bertpipe run: error: --use_tpu: no TPU here")
    assert not (tmp_path / "out").exists()
