"""The Trainer's Vertex AI machine spec, and every bad input refused at compile time."""
from __future__ import annotations

import pytest
from google.cloud.aiplatform_v1.types import AcceleratorType, MachineSpec

from pipeline import vertex_resources as tr
from pipeline.names import check_gcs_uri, check_image
from pipeline import cli

IMAGE = "gcr.io/my-project/bert:1"


def _resources(**flags) -> tr.TrainerResources:
    values = dict(region="us-central1", project="my-project", image=IMAGE)
    values.update(flags)
    return tr.trainer_resources(**values)


def test_every_accelerator_name_is_vertex_ais():
    """The tables use google-cloud-aiplatform's AcceleratorType names, and every spec they
    make is a valid MachineSpec message."""
    names = {shape.accelerator_type for shape in tr.TPU_SHAPES.values()} | set(tr.GPU_MACHINES)
    assert names <= set(AcceleratorType.__members__)
    for shape in tr.TPU_SHAPES.values():
        MachineSpec(_resources(tpu=next(k for k, s in tr.TPU_SHAPES.items() if s is shape),
                               region=shape.regions[0], image=IMAGE).machine_spec())


@pytest.mark.parametrize("tpu,machine,accelerator,count,topology", [
    ("v5e", "ct5lp-hightpu-4t", "TPU_V5_LITEPOD", 4, "2x2"),
    ("v5e-8", "ct5lp-hightpu-8t", "TPU_V5_LITEPOD", 8, "2x4"),
    ("TPU_V5_LITEPOD", "ct5lp-hightpu-4t", "TPU_V5_LITEPOD", 4, "2x2"),
    ("v3-8", "cloud-tpu", "TPU_V3", 8, None),
    ("v2-8", "cloud-tpu", "TPU_V2", 8, None),
])
def test_tpu_shapes_under_vertex_names(tpu, machine, accelerator, count, topology):
    resources = _resources(tpu=tpu)
    assert resources.is_tpu
    expected = {"machine_type": machine, "accelerator_type": accelerator, "accelerator_count": count}
    if topology:
        expected["tpu_topology"] = topology
    assert resources.machine_spec() == expected
    assert [p["replica_count"] for p in resources.worker_pool_specs()] == [1]


# Every --trainer_tpu name and the machine it must give, written from Vertex AI's compute
# documentation (see pipeline/vertex_resources.py): a v2-8/v3-8 is one `cloud-tpu` with 8 cores,
# and a v5litepod-N / v5e-N slice is N chips.
_V2 = ("cloud-tpu", "TPU_V2", 8, None)
_V3 = ("cloud-tpu", "TPU_V3", 8, None)
_V5E_1 = ("ct5lp-hightpu-1t", "TPU_V5_LITEPOD", 1, "1x1")
_V5E_4 = ("ct5lp-hightpu-4t", "TPU_V5_LITEPOD", 4, "2x2")
_V5E_8 = ("ct5lp-hightpu-8t", "TPU_V5_LITEPOD", 8, "2x4")
EVERY_TPU_NAME = {
    "v2-8": _V2, "v2": _V2, "TPU_V2": _V2,
    "v3-8": _V3, "v3": _V3, "TPU_V3": _V3,
    "v5e-1": _V5E_1, "v5litepod-1": _V5E_1,
    "v5e-4": _V5E_4, "v5litepod-4": _V5E_4, "v5e": _V5E_4, "TPU_V5_LITEPOD": _V5E_4,
    "v5e-8": _V5E_8, "v5litepod-8": _V5E_8,
}


def test_every_tpu_name_is_pinned_here():
    assert set(EVERY_TPU_NAME) == set(tr.TPU_SHAPES) | set(tr.TPU_ALIASES)


@pytest.mark.parametrize("name", sorted(EVERY_TPU_NAME))
def test_each_tpu_name_gives_its_machine(name):
    machine, accelerator, count, topology = EVERY_TPU_NAME[name]
    region = "us-central1"
    expected = {"machine_type": machine, "accelerator_type": accelerator, "accelerator_count": count}
    if topology:
        expected["tpu_topology"] = topology
    assert _resources(tpu=name, region=region).machine_spec() == expected


def test_no_tpu_v4_vertex_custom_training_offers_v2_v3_v5e():
    for name in ("v4", "v4-8", "TPU_V4_POD"):
        with pytest.raises(ValueError, match=f"--trainer_tpu '{name}' is not a TPU Vertex AI trains on"):
            _resources(tpu=name, region="us-central2")


@pytest.mark.parametrize("machine,gpu,counts", [
    # Compute Engine's N1 table: 1 V100 allows 12 vCPUs / 78 GB, 2 allow 24 / 156, 4: 48 / 312, 8: 96 / 624.
    ("n1-standard-32", "NVIDIA_TESLA_V100", (4, 8)),
    ("n1-standard-16", "NVIDIA_TESLA_V100", (2, 4, 8)),
    ("n1-highmem-8", "NVIDIA_TESLA_V100", (1, 2, 4, 8)),
    ("n1-highmem-16", "NVIDIA_TESLA_V100", (2, 4, 8)),
    ("n1-standard-32", "NVIDIA_TESLA_P100", (2, 4)),  # 1 P100: 16 vCPUs at most
    ("n1-standard-96", "NVIDIA_TESLA_T4", (4,)),
])
def test_n1_gpu_counts_follow_compute_engines_table(machine, gpu, counts):
    for count in (1, 2, 4, 8):
        if count in counts:
            assert _resources(machine_type=machine, gpu=gpu, gpu_count=count).accelerator_count == count
        else:
            with pytest.raises(ValueError, match=f"--trainer_gpu_count {count}: {machine} takes"):
                _resources(machine_type=machine, gpu=gpu, gpu_count=count)
    # Without a count: the smallest the machine takes.
    assert _resources(machine_type=machine, gpu=gpu).accelerator_count == counts[0]


def test_n1_memory_limits_refuse_a_machine_its_vcpus_would_allow():
    # 4 P100s allow 64 vCPUs but 208 GB: n1-highmem-64 (416 GB) takes no P100 at all.
    with pytest.raises(ValueError, match="does not attach to --trainer_machine_type n1-highmem-64"):
        _resources(machine_type="n1-highmem-64", gpu="NVIDIA_TESLA_P100", gpu_count=4)
    assert _resources(machine_type="n1-highmem-32", gpu="NVIDIA_TESLA_P100", gpu_count=4).accelerator_count == 4


def test_the_job_runs_as_the_pipelines_service_account_and_knows_its_accelerator():
    from google.cloud import aiplatform_v1  # pylint: disable=import-outside-toplevel

    sa = "trainer@my-project.iam.gserviceaccount.com"
    resources = _resources(machine_type="n1-standard-8", gpu="NVIDIA_TESLA_T4", gpu_count=2, service_account=sa)
    job_spec = resources.training_args()["job_spec"]
    assert job_spec["service_account"] == sa
    [pool] = job_spec["worker_pool_specs"]
    assert pool["container_spec"]["env"] == [{"name": "BERTPIPE_CHECK_CODE_VERSION", "value": "1"},
                                             {"name": "BERTPIPE_EXPECTED_ACCELERATOR", "value": "NVIDIA_TESLA_T4:2"}]
    # The v1 proto takes the job spec as it is (field names and types): what TFX's client sends.
    proto = aiplatform_v1.CustomJobSpec(job_spec)
    assert proto.service_account == sa and proto.worker_pool_specs[0].container_spec.env[1].value == "NVIDIA_TESLA_T4:2"
    assert "service_account" not in _resources().training_args()["job_spec"]
    with pytest.raises(ValueError, match="--service_account 'trainer' is not a service account e-mail"):
        _resources(service_account="trainer")


def test_gpu_workers_make_a_chief_pool_and_a_worker_pool():
    resources = _resources(machine_type="a2-highgpu-8g", gpu="NVIDIA_TESLA_A100", gpu_count=8, workers=4)
    pools = resources.worker_pool_specs()
    assert [p["replica_count"] for p in pools] == [1, 3]
    assert all(p["machine_spec"] == {"machine_type": "a2-highgpu-8g", "accelerator_type": "NVIDIA_TESLA_A100",
                                     "accelerator_count": 8} for p in pools)
    assert all(p["container_spec"] == {"image_uri": IMAGE, "env": [
        {"name": "BERTPIPE_CHECK_CODE_VERSION", "value": "1"},
        {"name": "BERTPIPE_EXPECTED_ACCELERATOR", "value": "NVIDIA_TESLA_A100:8"}]} for p in pools)
    assert resources.training_args() == {"project": "my-project", "job_spec": {"worker_pool_specs": pools}}
    # The count defaults to what the machine carries.
    assert _resources(machine_type="g2-standard-24", gpu="NVIDIA_L4").accelerator_count == 2
    assert _resources().machine_spec() == {"machine_type": "n1-standard-8"}


@pytest.mark.parametrize("flags,message", [
    (dict(tpu="v9"), "--trainer_tpu 'v9' is not a TPU Vertex AI trains on"),
    (dict(gpu="NVIDIA_TESLA_Z1", machine_type="n1-standard-8"), "--trainer_gpu 'NVIDIA_TESLA_Z1' is not a Vertex AI GPU"),
    (dict(tpu="v5e", gpu="NVIDIA_TESLA_T4"), "--trainer_tpu and --trainer_gpu"),
    (dict(tpu="v3-8", workers=2), "--trainer_workers 2 with --trainer_tpu"),
    (dict(tpu="v5e", region="europe-west1"), "TPU v5e-4 is not offered in --region europe-west1"),
    (dict(tpu="v5e", machine_type="n1-standard-8"), "does not go with --trainer_tpu v5e"),
    (dict(gpu="NVIDIA_TESLA_A100", machine_type="n1-standard-8"), "does not attach to --trainer_machine_type"),
    (dict(gpu="NVIDIA_TESLA_A100", machine_type="a2-highgpu-8g", gpu_count=4), "a2-highgpu-8g takes 8"),
    (dict(machine_type="a2-highgpu-8g"), "is a GPU machine: give --trainer_gpu"),
    (dict(gpu_count=2), "--trainer_gpu_count without --trainer_gpu"),
    (dict(machine_type="cloud-tpu"), "is a TPU machine: use --trainer_tpu"),
    (dict(workers=0), "--trainer_workers must be at least 1"),
    (dict(region=None), "--region None is not a Google Cloud region"),
    (dict(project="My Project"), "--project 'My Project' is not a Google Cloud project id"),
    (dict(image="bert"), "--trainer_image 'bert' is not a container image name"),
])
def test_bad_trainer_specs_are_refused_with_the_flag_named(flags, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        _resources(**flags)


@pytest.mark.parametrize("image,ok", [
    ("gcr.io/p/bert:1", True), ("us-docker.pkg.dev/my-proj/repo/bert-tfx-pipeline:v1.2", True),
    ("localhost:5000/bert", True), (f"gcr.io/p/bert@sha256:{'a' * 64}", True),
    ("gcr.io/YOUR_PROJECT/bert:latest", False), ("bert:1", False), ("gcr.io/p/bert:", False), ("", False),
    ("gcr.io/p/bert image", False),
])
def test_image_names(image, ok):
    if ok:
        assert check_image("--image", image) == image
    else:
        with pytest.raises(ValueError, match="--image"):
            check_image("--image", image)


def test_gcs_locations():
    assert check_gcs_uri("--pipeline_root", "gs://my-bucket/root") == "gs://my-bucket/root"
    for bad in ("/local/root", "gs://", "gs://Upper/x", "s3://bucket/x", None):
        with pytest.raises(ValueError, match="--pipeline_root"):
            check_gcs_uri("--pipeline_root", bad)


BASE = ["compile", "--image", IMAGE, "--pipeline_root", "gs://bucket/root"]


@pytest.mark.parametrize("argv,message", [
    (["compile", "--pipeline_root", "gs://bucket/root"], "--image is missing"),
    (["compile", "--image", "Bad Image", "--pipeline_root", "gs://bucket/root"], "--image 'Bad Image' is not"),
    (["compile", "--image", IMAGE, "--pipeline_root", "/tmp/root"], "--pipeline_root '/tmp/root' is not a Cloud"),
    (["compile", "--image", IMAGE], "--pipeline_root is missing"),
    (BASE + ["--serving_dir", "/srv/models"], "--serving_dir '/srv/models' is not a Cloud Storage"),
    (BASE + ["--trainer_tpu", "v5e", "--region", "us-central1", "--project", "my-project"],
     "--trainer_tpu needs --trainer_image"),
    (BASE + ["--trainer_tpu", "v6e", "--region", "us-central1", "--project", "my-project"], "--trainer_tpu 'v6e'"),
    (BASE + ["--trainer_tpu", "v5e", "--trainer_gpu", "NVIDIA_L4", "--region", "us-central1", "--project", "my-project"],
     "--trainer_tpu and --trainer_gpu"),
    (BASE + ["--trainer_workers", "3", "--region", "us-central1", "--project", "my-project",
             "--train_batch_size", "32"], "--train_batch_size 32 does not split over the Trainer's 3 replicas"),
    (BASE + ["--trainer_workers", "2"], "--region None"),
    (BASE + ["--step_cpu", "0"], "--step_cpu must be positive"),
])
def test_compile_refuses_bad_input_in_one_line_before_writing(argv, message, tmp_path, capsys):
    out = tmp_path / "pipeline.json"
    assert cli.main(argv + ["--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bertpipe compile: error: ") and "\n" not in err, err
    assert message in err, err
    assert not out.exists()
