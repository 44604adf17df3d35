"""Where the Trainer runs on Vertex AI: machine, accelerators, workers, region, image.

A pure description (no I/O, no TFX), built and checked at compile time from the
`bertpipe compile --trainer_*` flags, so a bad machine spec fails before anything is
submitted. `create_pipeline` receives it as `VertexResources` and turns it into the
Vertex AI CustomJob the Trainer launches (`TrainerResources.training_args`).

Vertex AI's names (machine types and `AcceleratorType` enum values), from
https://cloud.google.com/vertex-ai/docs/training/configure-compute and the
`MachineSpec` REST reference (acceleratorType, acceleratorCount, tpuTopology):
  - TPU v2 / v3 (a v2-8 / v3-8 device): machine type `cloud-tpu`, accelerator `TPU_V2` /
    `TPU_V3`, count 8.
  - TPU v5e: machine types `ct5lp-hightpu-1t` / `-4t` / `-8t`, accelerator `TPU_V5_LITEPOD`,
    count 1 / 4 / 8 chips, topology 1x1 / 2x2 / 2x4 (the single-host v5litepod-1/4/8 shapes).
  - No TPU v4: Vertex AI's "Training with TPU accelerators" page
    (https://cloud.google.com/vertex-ai/docs/training/training-with-tpu-vm) offers TPU v2, v3 and
    v5e for custom training; MachineSpec's enum having TPU_V4_POD is no promise a job runs.
  - GPUs: `a2-highgpu-Ng` with N x `NVIDIA_TESLA_A100`, `a2-ultragpu-Ng` with `NVIDIA_A100_80GB`,
    `a3-highgpu-8g` with 8 `NVIDIA_H100_80GB`, `g2-standard-*` with `NVIDIA_L4`, and N1 machines
    with `NVIDIA_TESLA_T4` / `_V100` / `_P100` / `_P4`.
The accelerator names are checked against google-cloud-aiplatform's AcceleratorType enum
by a test. TPU regions are Cloud TPU's published regions
(https://cloud.google.com/tpu/docs/regions-zones); a region outside them is refused.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional

from components.code_identity import CHECK_CODE_ENV
from components.trainer.accelerators import EXPECTED_ACCELERATOR_ENV, ExpectedAccelerator
from pipeline.names import check_image


@dataclasses.dataclass(frozen=True)
class TpuShape:
    """One TPU VM shape under Vertex AI's names."""

    machine_type: str
    accelerator_type: str
    accelerator_count: int
    topology: Optional[str]
    regions: tuple[str, ...]


_V5E_REGIONS = ("us-central1", "us-south1", "us-west1", "us-west4", "europe-west4", "asia-southeast1")
TPU_SHAPES = {
    "v2-8": TpuShape("cloud-tpu", "TPU_V2", 8, None, ("us-central1", "europe-west4", "asia-east1")),
    "v3-8": TpuShape("cloud-tpu", "TPU_V3", 8, None, ("us-central1", "europe-west4")),
    "v5e-1": TpuShape("ct5lp-hightpu-1t", "TPU_V5_LITEPOD", 1, "1x1", _V5E_REGIONS),
    "v5e-4": TpuShape("ct5lp-hightpu-4t", "TPU_V5_LITEPOD", 4, "2x2", _V5E_REGIONS),
    "v5e-8": TpuShape("ct5lp-hightpu-8t", "TPU_V5_LITEPOD", 8, "2x4", _V5E_REGIONS),
}
# Short names and Vertex AI's accelerator names, for the shape each most often means.
TPU_ALIASES = {"v2": "v2-8", "v3": "v3-8", "v5e": "v5e-4", "v5litepod-1": "v5e-1",
               "v5litepod-4": "v5e-4", "v5litepod-8": "v5e-8", "TPU_V2": "v2-8", "TPU_V3": "v3-8",
               "TPU_V5_LITEPOD": "v5e-4"}

# N1 machines: vCPUs and memory (GB per vCPU by family).
_N1_GB_PER_VCPU = {"standard": 3.75, "highmem": 6.5, "highcpu": 0.9}
N1_MACHINES = {f"n1-{kind}-{cpus}": (cpus, cpus * gb) for kind, gb in _N1_GB_PER_VCPU.items()
               for cpus in (4, 8, 16, 32, 64, 96)}
# Compute Engine's N1 table: GPU -> {count: (max vCPUs, max memory GB)} of the machine it attaches to.
N1_GPU_LIMITS = {
    "NVIDIA_TESLA_T4": {1: (48, 312), 2: (48, 312), 4: (96, 624)},
    "NVIDIA_TESLA_P4": {1: (24, 156), 2: (48, 312), 4: (96, 624)},
    "NVIDIA_TESLA_V100": {1: (12, 78), 2: (24, 156), 4: (48, 312), 8: (96, 624)},
    "NVIDIA_TESLA_P100": {1: (16, 104), 2: (32, 208), 4: (64, 208)},
}


def _n1_counts(gpu: str) -> dict[str, tuple[int, ...]]:
    """N1 machine -> the counts of `gpu` Compute Engine attaches to it (machines taking none left out)."""
    table = {machine: tuple(n for n, (max_cpus, max_gb) in N1_GPU_LIMITS[gpu].items()
                            if cpus <= max_cpus and memory <= max_gb)
             for machine, (cpus, memory) in N1_MACHINES.items()}
    return {machine: counts for machine, counts in table.items() if counts}

GPU_MACHINES: dict[str, dict[str, tuple[int, ...]]] = {
    "NVIDIA_TESLA_A100": {f"a2-highgpu-{n}g": (n,) for n in (1, 2, 4, 8)},
    "NVIDIA_A100_80GB": {f"a2-ultragpu-{n}g": (n,) for n in (1, 2, 4, 8)},
    "NVIDIA_H100_80GB": {"a3-highgpu-8g": (8,)},
    "NVIDIA_H100_MEGA_80GB": {"a3-megagpu-8g": (8,)},
    "NVIDIA_L4": {"g2-standard-4": (1,), "g2-standard-8": (1,), "g2-standard-12": (1,), "g2-standard-16": (1,),
                  "g2-standard-24": (2,), "g2-standard-32": (1,), "g2-standard-48": (4,), "g2-standard-96": (8,)},
    **{gpu: _n1_counts(gpu) for gpu in N1_GPU_LIMITS},
}
# Machines that carry their GPUs built in: giving one without --trainer_gpu is a mistake.
_GPU_MACHINE_PREFIXES = ("a2-", "a3-", "g2-")
_MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
DEFAULT_MACHINE_TYPE = "n1-standard-8"


@dataclasses.dataclass(frozen=True)
class TrainerResources:
    """The Trainer's Vertex AI CustomJob: one chief and `worker_count - 1` workers, all alike.

    `accelerator_type` is Vertex AI's AcceleratorType name (None: CPU only); a TPU has a
    `tpu_topology` where Vertex AI needs one. The job runs `image` (for TPUs, an image built
    from kubeflow/Dockerfile.tpu) with TFX's run_executor entry point.
    """

    machine_type: str
    region: str
    project: str
    image: str
    accelerator_type: Optional[str] = None
    accelerator_count: int = 0
    tpu_topology: Optional[str] = None
    worker_count: int = 1
    service_account: Optional[str] = None  # the job runs as it (None: Vertex AI's Custom Code Service Agent)

    @property
    def is_tpu(self) -> bool:
        return bool(self.accelerator_type and self.accelerator_type.startswith("TPU_"))

    def machine_spec(self) -> dict:
        spec = {"machine_type": self.machine_type}
        if self.accelerator_type:
            spec["accelerator_type"] = self.accelerator_type
            spec["accelerator_count"] = self.accelerator_count
        if self.tpu_topology:
            spec["tpu_topology"] = self.tpu_topology
        return spec

    def worker_pool_specs(self) -> list[dict]:
        """Vertex AI's worker pools: pool 0 is the chief (1 replica), pool 1 the other workers.

        Vertex AI names pool 0's replica `chief` and pool 1's `worker` in TF_CONFIG. The
        container command is left to TFX's training client, which sets its run_executor call.
        """
        # The replicas check that the image holds the spec's code (components/trainer/component.py)...
        container = {"image_uri": self.image, "env": [{"name": CHECK_CODE_ENV, "value": "1"}]}
        if self.accelerator_type:
            # ...and that they got what the job pays for (components/trainer/accelerators.py).
            expected = ExpectedAccelerator(self.accelerator_type, self.accelerator_count)
            container["env"].append({"name": EXPECTED_ACCELERATOR_ENV, "value": expected.to_env()})
        pool = {"machine_spec": self.machine_spec(), "container_spec": container}
        pools = [{**pool, "replica_count": 1}]
        if self.worker_count > 1:
            pools.append({**pool, "replica_count": self.worker_count - 1})
        return pools

    def training_args(self) -> dict:
        """The `ai_platform_training_args` TFX's Vertex trainer executor reads (a CustomJob,
        plus the project it pops off before submitting)."""
        job_spec = {"worker_pool_specs": self.worker_pool_specs()}
        if self.service_account:
            job_spec["service_account"] = self.service_account
        return {"project": self.project, "job_spec": job_spec}


@dataclasses.dataclass(frozen=True)
class StepResources:
    """CPU and memory limits of the pipeline's other steps (KFP ResourceSpec; None: Vertex's default)."""

    cpu_limit: Optional[float] = None
    memory_limit_gb: Optional[float] = None

    def __post_init__(self):
        for flag, value in (("--step_cpu", self.cpu_limit), ("--step_memory_gb", self.memory_limit_gb)):
            if value is not None and value <= 0:
                raise ValueError(f"{flag} must be positive, got {value}.")


@dataclasses.dataclass(frozen=True)
class VertexResources:
    """What `create_pipeline` needs to place the steps on Vertex AI (None in local runs)."""

    trainer: Optional[TrainerResources] = None
    steps: Optional[StepResources] = None
    # Phase 2 of a two-phase run (the --phase2_trainer_* flags); None: phase 2 trains on `trainer`.
    phase2_trainer: Optional[TrainerResources] = None


def resolve_tpu(name: str) -> tuple[str, TpuShape]:
    """('v5e-4', its shape) for any accepted TPU name; ValueError naming the accepted ones."""
    key = TPU_ALIASES.get(name, TPU_ALIASES.get(name.lower(), name.lower()))
    if key not in TPU_SHAPES:
        accepted = ", ".join(sorted(TPU_SHAPES) + sorted(TPU_ALIASES))
        raise ValueError(f"--trainer_tpu {name!r} is not a TPU Vertex AI trains on; use one of: {accepted}.")
    return key, TPU_SHAPES[key]


def trainer_resources(
    region: Optional[str],
    project: Optional[str],
    image: Optional[str],
    machine_type: Optional[str] = None,
    gpu: Optional[str] = None,
    gpu_count: Optional[int] = None,
    tpu: Optional[str] = None,
    workers: int = 1,
    service_account: Optional[str] = None,
) -> TrainerResources:
    """The checked TrainerResources for the `--trainer_*` flags; ValueError on any bad combination.

    Args:
      region, project: where the CustomJob runs (--region, --project).
      image: the Trainer's image (--trainer_image; a TPU needs the TPU image).
      machine_type: Vertex AI machine type; for a TPU it is implied and may be omitted.
      gpu, gpu_count: Vertex AI GPU name (e.g. NVIDIA_TESLA_A100) and how many per machine.
      tpu: v2-8, v3-8, v5e (v5e-4), v5e-1, v5e-8, or a Vertex TPU accelerator name.
      workers: machines in all (chief included); more than 1 trains with MultiWorkerMirroredStrategy.
      service_account: the pipeline's service account (--service_account): the job runs as it.
    """
    if service_account is not None and "@" not in service_account:
        raise ValueError(f"--service_account {service_account!r} is not a service account e-mail "
                         f"(NAME@PROJECT.iam.gserviceaccount.com).")
    if not region or not _REGION.match(region):
        raise ValueError(f"--region {region!r} is not a Google Cloud region (e.g. us-central1); "
                         f"the Trainer's Vertex AI job needs one.")
    if not project or not _PROJECT.match(project):
        raise ValueError(f"--project {project!r} is not a Google Cloud project id (6-30 lowercase letters, "
                         f"digits or hyphens); the Trainer's Vertex AI job needs one.")
    check_image("--trainer_image", image)
    if workers < 1:
        raise ValueError(f"--trainer_workers must be at least 1, got {workers}.")
    if machine_type is not None and not _MACHINE_TYPE.match(machine_type):
        raise ValueError(f"--trainer_machine_type {machine_type!r} is not a machine type name "
                         f"(e.g. n1-standard-8, a2-highgpu-8g).")
    if tpu:
        if gpu or gpu_count:
            raise ValueError("--trainer_tpu and --trainer_gpu/--trainer_gpu_count together: a Vertex AI machine "
                             "has TPUs or GPUs, not both; drop one.")
        if workers > 1:
            raise ValueError(f"--trainer_workers {workers} with --trainer_tpu: TPU training here runs on one TPU VM "
                             f"(TPUStrategy on its local chips); use --trainer_workers 1 or a larger TPU shape.")
        key, shape = resolve_tpu(tpu)
        if machine_type is not None and machine_type != shape.machine_type:
            raise ValueError(f"--trainer_machine_type {machine_type} does not go with --trainer_tpu {tpu}: "
                             f"Vertex AI runs {key} on {shape.machine_type}; omit --trainer_machine_type.")
        if region not in shape.regions:
            raise ValueError(f"TPU {key} is not offered in --region {region}; it is in: {', '.join(shape.regions)}.")
        return TrainerResources(machine_type=shape.machine_type, region=region, project=project, image=image,
                                accelerator_type=shape.accelerator_type, accelerator_count=shape.accelerator_count,
                                tpu_topology=shape.topology, worker_count=1, service_account=service_account)

    machine_type = machine_type or DEFAULT_MACHINE_TYPE
    if machine_type.startswith(("cloud-tpu", "ct")):
        raise ValueError(f"--trainer_machine_type {machine_type} is a TPU machine: use --trainer_tpu instead.")
    if gpu is None:
        if gpu_count:
            raise ValueError("--trainer_gpu_count without --trainer_gpu: name the GPU (e.g. NVIDIA_TESLA_A100).")
        if machine_type.startswith(_GPU_MACHINE_PREFIXES):
            raise ValueError(f"--trainer_machine_type {machine_type} is a GPU machine: give --trainer_gpu and "
                             f"--trainer_gpu_count.")
        return TrainerResources(machine_type=machine_type, region=region, project=project, image=image,
                                worker_count=workers, service_account=service_account)
    if gpu not in GPU_MACHINES:
        raise ValueError(f"--trainer_gpu {gpu!r} is not a Vertex AI GPU name; use one of: "
                         f"{', '.join(sorted(GPU_MACHINES))}.")
    machines = GPU_MACHINES[gpu]
    if machine_type not in machines:
        raise ValueError(f"--trainer_gpu {gpu} does not attach to --trainer_machine_type {machine_type}; "
                         f"it goes with: {', '.join(sorted(machines))}.")
    counts = machines[machine_type]
    gpu_count = gpu_count if gpu_count is not None else counts[0]
    if gpu_count not in counts:
        raise ValueError(f"--trainer_gpu_count {gpu_count}: {machine_type} takes "
                         f"{' or '.join(map(str, counts))} x {gpu}.")
    return TrainerResources(machine_type=machine_type, region=region, project=project, image=image,
                            accelerator_type=gpu, accelerator_count=gpu_count, worker_count=workers,
                            service_account=service_account)


PHASE2_FLAG_PREFIX = "--phase2_trainer_"


def phase2_trainer_resources(**flags) -> TrainerResources:
    """`trainer_resources` for phase 2's machine (the `--phase2_trainer_*` flags): the same
    checks, with errors naming phase 2's flags."""
    try:
        return trainer_resources(**flags)
    except ValueError as e:
        raise ValueError(str(e).replace("--trainer_", PHASE2_FLAG_PREFIX)) from e
