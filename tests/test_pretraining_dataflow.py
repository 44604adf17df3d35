"""Both data steps as Dataflow would get them, proven offline.

Beam's DataflowRunner with --dry_run=True builds the whole job (the portable pipeline with
every transform's pickled code, the worker environment and the files it stages) and
returns without submitting it. The job is checked for what a Dataflow worker needs: this
project's code with the C extensions' sources (--setup_file) or a worker image that has
them built (--sdk_container_image, kubeflow/Dockerfile), no path of this machine, and
reads and writes on gs://. GCS cannot be reached here: gs:// listings (the driver lists
the input files) go to fake_gcs, which keeps GCS's semantics. The vocabulary job also runs
for real on the DirectRunner against that fake, reading and writing only gs://.
"""
from __future__ import annotations

import base64
import bz2
import os
import tarfile
import zlib

import apache_beam as beam
import pytest
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2

import fake_gcs
from components.pretraining_data import beam_job, text_reader, word_counts
from components.pretraining_data import vocab as vocab_lib
from components.pretraining_data.options import PretrainingDataOptions
from conftest import REPO_ROOT
from test_pretraining_fixtures import corpus_text, vocab_tokens

BUCKET = "gs://my-bucket"
DATAFLOW = ["--runner=DataflowRunner", "--project=my-project", "--region=us-central1",
            f"--temp_location={BUCKET}/tmp", "--dry_run=True", "--job_name=bert-data"]
SETUP_FILE = [f"--setup_file={REPO_ROOT}/setup.py"]
IMAGE = "us-docker.pkg.dev/my-project/bert/bert-tfx-pipeline:abc123"
C_SOURCES = {"components/pretraining_data/_documents.c", "components/pretraining_data/_instances.c",
             "components/pretraining_data/_records.c", "components/pretraining_data/_random.h", "setup.py"}


@pytest.fixture
def gcs(monkeypatch):
    store = fake_gcs.install(monkeypatch)
    for i in range(2):
        store.put(f"{BUCKET}/corpus/part-{i}.txt", corpus_text(30, seed=i).encode())
    store.put(f"{BUCKET}/vocab.txt", "".join(t + "\n" for t in vocab_tokens()).encode())
    return store


def _dry_run(build, beam_args):
    """Builds the job on a DataflowRunner --dry_run pipeline; returns (apiclient.Job, options)."""
    pipeline = beam.Pipeline(options=beam_job.beam_options(DATAFLOW + beam_args))
    build(pipeline)
    result = pipeline.run()
    return result.job, pipeline.options


def _unpickled_bytes(payload: bytes) -> bytes:
    raw = base64.b64decode(payload)
    try:
        return zlib.decompress(raw)
    except zlib.error:
        return bz2.decompress(raw)


def _code_shipped(proto: beam_runner_api_pb2.Pipeline) -> list[bytes]:
    """Every transform's pickled functions and values (DoFns, combiners, Create's elements),
    decompressed: what the workers unpickle."""
    shipped = []
    for transform in proto.components.transforms.values():
        if transform.spec.urn == common_urns.primitives.PAR_DO.urn:
            fn = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload).do_fn
        elif transform.spec.urn in (common_urns.composites.COMBINE_PER_KEY.urn,
                                    common_urns.composites.COMBINE_GLOBALLY.urn):
            fn = beam_runner_api_pb2.CombinePayload.FromString(transform.spec.payload).combine_fn
        else:
            continue
        if fn.payload:
            shipped.append(_unpickled_bytes(fn.payload))
    return shipped


def _staged_files(proto: beam_runner_api_pb2.Pipeline) -> dict[str, str]:
    """{staged name: local file} of the artifacts the workers' environment gets."""
    staged = {}
    for environment in proto.components.environments.values():
        for artifact in environment.dependencies:
            if artifact.role_urn == common_urns.artifact_roles.STAGING_TO.urn:
                name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(artifact.role_payload).staged_name
                path = beam_runner_api_pb2.ArtifactFilePayload.FromString(artifact.type_payload).path
                staged[name] = path
    return staged


def _container_images(proto: beam_runner_api_pb2.Pipeline) -> set[str]:
    return {beam_runner_api_pb2.DockerPayload.FromString(e.payload).container_image
            for e in proto.components.environments.values() if e.urn == common_urns.environments.DOCKER.urn}


def _check_no_local_paths(job, tmp_path):
    # Beam pickles its own lambdas with their file names (site-packages): metadata, not inputs.
    # The venv may live inside the checkout (make's .venv), so those names are taken out first.
    import apache_beam

    site_packages = os.path.dirname(os.path.dirname(os.path.abspath(apache_beam.__file__))).encode()
    local = [REPO_ROOT, str(tmp_path), os.path.expanduser("~") + "/"]
    for shipped in _code_shipped(job.proto_pipeline):
        shipped = shipped.replace(site_packages, b"<site-packages>")
        for path in local:
            assert path.encode() not in shipped, f"{path} reaches the workers"
    # Options the workers get: gs:// locations, nothing of this machine (the setup file is
    # read here, at submission, and only its package is staged).
    options = {k: v for k, v in job.options.get_all_options(drop_default=True).items() if k != "setup_file"}
    for key, value in options.items():
        assert not str(value).startswith("/") and not any(p in str(value) for p in local), (key, value)
    assert options["temp_location"].startswith(f"{BUCKET}/tmp/")


def _check_ships_the_package(job):
    staged = _staged_files(job.proto_pipeline)
    assert "workflow.tar.gz" in staged, staged  # what --setup_file becomes: the sdist, pip-installed on workers
    with tarfile.open(staged["workflow.tar.gz"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert C_SOURCES <= names  # the worker compiles the C extensions from these


def test_data_job_builds_for_dataflow_with_the_package_and_gs_paths_only(gcs, tmp_path):
    options = PretrainingDataOptions(max_seq_length=32, max_predictions_per_seq=5, num_shards=2)
    staging = f"{BUCKET}/records.staging-1"
    job, _ = _dry_run(lambda p: beam_job.build_pipeline(p, [f"{BUCKET}/corpus/*.txt"], f"{BUCKET}/vocab.txt",
                                                        staging, options), SETUP_FILE)
    _check_ships_the_package(job)
    _check_no_local_paths(job, tmp_path)
    shipped = b"".join(_code_shipped(job.proto_pipeline))
    for path in (f"{BUCKET}/corpus/part-0.txt", f"{BUCKET}/corpus/part-1.txt", f"{BUCKET}/vocab.txt", staging):
        assert path.encode() in shipped, path  # the workers read and write gs://
    names = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
    assert {"SpillDocuments", "MakeInstances", "WriteShards"} <= names


def test_vocabulary_job_builds_for_dataflow_with_the_package_and_gs_paths_only(gcs, tmp_path):
    files = text_reader.expand_patterns([f"{BUCKET}/corpus/*.txt"])
    staging = f"{BUCKET}/vocab.txt.counts-1"
    job, _ = _dry_run(lambda p: word_counts.build_pipeline(p, text_reader.split_ranges(files, 1 << 20), staging,
                                                           True, sample_lines=1000), SETUP_FILE)
    _check_ships_the_package(job)
    _check_no_local_paths(job, tmp_path)
    shipped = b"".join(_code_shipped(job.proto_pipeline))
    assert f"{BUCKET}/corpus/part-1.txt".encode() in shipped and staging.encode() in shipped
    names = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
    assert {"CountWords", "SumCounts", "CountLines", "WriteCounts"} <= {n.split("/")[0] for n in names}


def test_with_the_pipeline_image_workers_get_the_image_and_nothing_staged(gcs, tmp_path):
    job, _ = _dry_run(lambda p: beam_job.build_pipeline(p, [f"{BUCKET}/corpus/*.txt"], f"{BUCKET}/vocab.txt",
                                                        f"{BUCKET}/out.staging-1", PretrainingDataOptions()),
                      [f"--sdk_container_image={IMAGE}", "--experiments=use_runner_v2"])
    assert _container_images(job.proto_pipeline) == {IMAGE}
    assert "workflow.tar.gz" not in _staged_files(job.proto_pipeline)
    _check_no_local_paths(job, tmp_path)


def test_vocabulary_reads_and_writes_gs_on_the_direct_runner(gcs):
    n = vocab_lib.learn_vocabulary([f"{BUCKET}/corpus/*.txt"], f"{BUCKET}/out/vocab.txt", 150, True,
                                   beam_pipeline_args=["--direct_num_workers=2"])
    tokens = gcs.objects[f"{BUCKET}/out/vocab.txt"][0].decode().split("\n")[:-1]
    assert len(tokens) == n and tokens[:5] == list(vocab_lib.SPECIAL_TOKENS) and "the" in tokens
    # Only the vocabulary is left: the counts' staging objects are deleted.
    assert sorted(p for p in gcs.objects if p.startswith(f"{BUCKET}/out/")) == [f"{BUCKET}/out/vocab.txt"]


def test_compiled_vertex_spec_gives_both_data_steps_the_beam_arguments(tmp_path):
    import json

    from pipeline import cli

    beam_args = ["--runner=DataflowRunner", "--project=my-project", "--region=us-central1",
                 f"--temp_location={BUCKET}/tmp", f"--sdk_container_image={IMAGE}", "--max_num_workers=16"]
    out = tmp_path / "pipeline.json"
    assert cli.main(["compile", "--output", str(out), "--pipeline_root", f"{BUCKET}/root", "--image", IMAGE,
                     "--corpus", f"{BUCKET}/corpus/*.txt"] + [f"--beam_arg={a}" for a in beam_args]) == 0
    executors = json.loads(out.read_text())["pipelineSpec"]["deploymentSpec"]["executors"]
    for step in ("VocabularyGen", "PretrainingDataGen"):
        args = executors[f"{step}_executor"]["container"]["args"]
        assert [a for a in args if a in beam_args] == beam_args, step


def test_the_cli_dry_run_builds_both_jobs_for_a_users_project_and_writes_nothing(gcs, capsys):
    """The commands of docs/data_at_scale.md, with --dry_run=True added."""
    from pipeline import cli

    dataflow = ["--runner=DataflowRunner", f"--setup_file={REPO_ROOT}/setup.py", "--beam_arg=--project=my-project",
                "--beam_arg=--region=us-central1", f"--beam_arg=--temp_location={BUCKET}/tmp",
                "--beam_arg=--dry_run=True"]
    before = set(gcs.objects)
    assert cli.main(["vocab", f"--input_file={BUCKET}/corpus/*.txt", f"--vocab_file={BUCKET}/out/vocab.txt"]
                    + dataflow) == 0
    assert "Dry run: the word-count job was built" in capsys.readouterr().out
    assert cli.main(["prepare-data", f"--input_file={BUCKET}/corpus/*.txt", f"--vocab_file={BUCKET}/vocab.txt",
                     f"--output_dir={BUCKET}/records"] + dataflow) == 0
    assert "Dry run: the job for 2 file(s)" in capsys.readouterr().out
    assert set(gcs.objects) == before
