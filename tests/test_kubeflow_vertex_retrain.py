"""`bertpipe submit --if_new_span`: a retraining spec reaches Vertex AI only when Cloud Storage
holds a span newer than the latest blessed model's in Vertex ML Metadata.

Neither service can be reached here. Cloud Storage is a fake `storage.Client.list_blobs` with
the service's semantics, read from google-cloud-storage's client and Beam's gcsfilesystem.py:
a bucket is a flat set of object names; listing returns the names that start with a prefix,
in lexicographic order, as real `storage.Blob`s; there are no directories (a "folder" is only
a name prefix, or a zero-byte `name/` placeholder object); an unknown bucket is NotFound.
Vertex AI is the PipelineService fake of tests/test_lineage_vertex.py (its jobs, list filtered
by pipeline name) joined with the create call of tests/test_kubeflow_submit.py.
"""
from __future__ import annotations

import pytest
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.aiplatform import initializer, pipeline_jobs
from google.cloud.aiplatform_v1.types.pipeline_state import PipelineState

from kubeflow import gcs_listing, submit
from pipeline import cli
from test_kubeflow_submit import FakePipelineClient
from test_lineage_vertex import PIPELINE, PROJECT, REGION, FakePipelineService, _Ids, _job

CORPUS = "gs://data-bucket/corpus/span-{SPAN}/*.txt"


class FakeStorageClient:
    """`list_blobs` over {bucket: [object names]}, as Cloud Storage answers it."""

    def __init__(self, buckets: dict[str, list[str]]):
        self.buckets = buckets
        self.calls = []

    def list_blobs(self, bucket_or_name, prefix=None, delimiter=None, **_):
        name = bucket_or_name if isinstance(bucket_or_name, str) else bucket_or_name.name
        self.calls.append((name, prefix))
        if name not in self.buckets:
            raise api_exceptions.NotFound(f"GET https://storage.googleapis.com/storage/v1/b/{name}/o: "
                                          "The specified bucket does not exist.")
        assert delimiter is None  # the listing is flat: every object under the prefix
        bucket = storage.Bucket(client=None, name=name)
        return iter([storage.Blob(n, bucket=bucket) for n in sorted(self.buckets[name])
                     if n.startswith(prefix or "")])


class FakeVertex(FakePipelineClient):
    """One client for both calls the command makes: list the pipeline's jobs, create one."""

    def __init__(self, location, service):
        super().__init__(location, evaluation_uri=None, final_state=PipelineState.PIPELINE_STATE_SUCCEEDED)
        self.service = service

    def list_pipeline_jobs(self, *args, **kwargs):
        return self.service.list_pipeline_jobs(*args, **kwargs)


@pytest.fixture(scope="module")
def retrain_spec(tmp_path_factory):
    out = tmp_path_factory.mktemp("vertex_retrain") / "retrain.json"
    assert cli.main(["compile", "--retrain", "--output", str(out), "--pipeline_root", "gs://bucket/root",
                     "--image", "gcr.io/my-project/bert:1", "--corpus", CORPUS]) == 0
    return str(out)


@pytest.fixture
def clouds(monkeypatch):
    """Returns a function that sets what Vertex AI holds (jobs) and Cloud Storage holds
    (objects); it gives the state that records the clients' calls."""
    state = {"clients": [], "storage": None, "service": None}

    def create_client(client_class=None, credentials=None, location_override=None, **_):
        client = FakeVertex(location_override, state["service"])
        state["clients"].append(client)
        return client

    monkeypatch.setattr(initializer.global_config, "create_client", create_client)
    monkeypatch.setattr(pipeline_jobs.gcs_utils, "create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist",
                        lambda **kwargs: None)
    monkeypatch.setattr("google.auth.default", lambda *a, **k: (AnonymousCredentials(), PROJECT))
    monkeypatch.setattr(storage, "Client", lambda project=None, **_: state["storage"])
    real_build = submit.build_job
    monkeypatch.setattr(submit, "build_job", lambda request, credentials=None: real_build(
        request, credentials=AnonymousCredentials()))

    def holding(jobs, objects):
        state["service"] = FakePipelineService(jobs)
        state["storage"] = FakeStorageClient(objects)
        return state

    return holding


def _created(state) -> list:
    return [r for c in state["clients"] for r in c.requests]


def _submit(spec, *extra):
    return cli.main(["submit", spec, "--project", PROJECT, "--region", REGION, "--if_new_span"] + list(extra))


def _spans(*numbers, bucket="data-bucket"):
    return {bucket: [f"corpus/span-{n}/part-{i}.txt" for n in numbers for i in range(2)]}


def test_no_new_span_creates_no_job_and_says_so_in_one_line(retrain_spec, clouds, capsys, tmp_path):
    ids = _Ids()
    state = clouds([_job(ids, "bert-pretraining-1", 0, 10, model_span=1),
                    _job(ids, "bert-pretraining-2", 100, 10, model_span=2)], _spans(1, 2))
    summary = tmp_path / "summary.md"
    assert _submit(retrain_spec, "--wait", "--summary_file", str(summary)) == 0
    out = capsys.readouterr().out.strip()
    assert "\n" not in out
    assert out.startswith("submit: nothing new: the newest span 2 is not newer than span 2 of the blessed model")
    assert out.endswith("no pipeline job was created.")
    assert out in summary.read_text()  # the workflow's job summary says why nothing ran
    assert _created(state) == []
    # One flat listing under the pattern's fixed part; Vertex asked for this pipeline's jobs only.
    assert state["storage"].calls == [("data-bucket", "corpus/span-")]
    assert [call[2] for call in state["service"].calls] == [f'pipeline_name="{PIPELINE}"']


def test_a_new_span_is_submitted(retrain_spec, clouds, capsys):
    state = clouds([_job(_Ids(), "bert-pretraining-1", 0, 10, model_span=2)], _spans(1, 2, 3))
    assert _submit(retrain_spec) == 0
    assert "submit: span 3 is newer than span 2 of the blessed model" in capsys.readouterr().out
    [request] = _created(state)
    assert dict(request.pipeline_job.pipeline_spec)["pipelineInfo"]["name"] == PIPELINE


def test_force_submits_without_a_new_span(retrain_spec, clouds, capsys):
    state = clouds([_job(_Ids(), "bert-pretraining-1", 0, 10, model_span=3)], _spans(3))
    assert _submit(retrain_spec, "--force") == 0
    assert "--force: retraining on span 3" in capsys.readouterr().out
    assert len(_created(state)) == 1


def test_first_run_ever_is_submitted(retrain_spec, clouds, capsys):
    """No job of the pipeline in Vertex AI yet: nothing is blessed, so it runs."""
    state = clouds([], _spans(0))
    assert _submit(retrain_spec) == 0
    assert "submit: no blessed model yet; training on span 0." in capsys.readouterr().out
    assert len(_created(state)) == 1


def test_the_latest_blessed_model_decides_not_the_latest_model(retrain_spec, clouds, capsys):
    """Span 3 was trained on but not blessed: the serving model has seen span 2 only, and the
    resolver would warm-start from it, so span 3 is still new."""
    ids = _Ids()
    state = clouds([_job(ids, "bert-pretraining-1", 0, 10, model_span=2),
                    _job(ids, "bert-pretraining-2", 100, 10, model_span=3, blessed=0)], _spans(2, 3))
    assert _submit(retrain_spec) == 0
    assert "span 3 is newer than span 2 of the blessed model" in capsys.readouterr().out
    assert len(_created(state)) == 1


def test_a_folder_placeholder_is_no_span(retrain_spec, clouds, capsys):
    """The console's empty `span-4/` folder object holds no *.txt: span 4 has not arrived."""
    objects = _spans(1, 2)
    objects["data-bucket"] += ["corpus/span-4/", "corpus/span-10-notes/readme.md"]
    state = clouds([_job(_Ids(), "bert-pretraining-1", 0, 10, model_span=2)], objects)
    assert _submit(retrain_spec) == 0
    assert "nothing new: the newest span 2" in capsys.readouterr().out
    assert _created(state) == []


def test_records_pattern_spans_are_directories_implied_by_object_names(tmp_path, clouds, capsys):
    """--examples 'gs://.../span-{SPAN}': ImportExampleGen's split pattern under input_base
    names directories, which Cloud Storage only has as prefixes of object names."""
    spec = tmp_path / "examples.json"
    assert cli.main(["compile", "--retrain", "--output", str(spec), "--pipeline_root", "gs://bucket/root",
                     "--image", "gcr.io/my-project/bert:1", "--examples", "gs://data-bucket/records/span-{SPAN}",
                     "--vocab_file", "gs://data-bucket/vocab.txt"]) == 0
    objects = {"data-bucket": ["records/span-5/train/data-00000.gz", "records/span-5/eval/data-00000.gz",
                               "records/span-6/train/data-00000.gz", "records/span-6/eval/data-00000.gz"]}
    state = clouds([_job(_Ids(), "bert-pretraining-1", 0, 10, model_span=5)], objects)
    assert _submit(str(spec)) == 0
    assert "span 6 is newer than span 5" in capsys.readouterr().out
    assert state["storage"].calls == [("data-bucket", "records/span-")]


@pytest.mark.parametrize("objects,message", [
    ({"other-bucket": []}, "bucket gs://data-bucket does not exist"),
    ({"data-bucket": ["corpus/readme.md"]}, "No file matches the span pattern gs://data-bucket/corpus/span-{SPAN}"),
])
def test_bad_data_location_is_one_line_and_no_job(retrain_spec, clouds, capsys, objects, message):
    state = clouds([], objects)
    assert _submit(retrain_spec) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bertpipe submit: error: ") and "\n" not in err and message in err, err
    assert _created(state) == []


def test_a_spec_without_the_resolver_is_refused(tmp_path, clouds, capsys):
    spec = tmp_path / "plain.json"
    assert cli.main(["compile", "--output", str(spec), "--pipeline_root", "gs://bucket/root",
                     "--image", "gcr.io/my-project/bert:1", "--corpus", CORPUS]) == 0
    state = clouds([], _spans(1))
    assert _submit(str(spec)) == 2
    assert "is not a retraining spec" in capsys.readouterr().err
    assert _created(state) == []


def test_listing_returns_objects_and_their_implied_directories():
    client = FakeStorageClient({"b": ["x/span-1/a.txt", "x/span-2/", "y/z.txt"]})
    assert gcs_listing.paths_under(client, "gs://b/x/span-*/*.txt") == [
        "gs://b/x/span-1", "gs://b/x/span-1/a.txt", "gs://b/x/span-2"]
    assert gcs_listing.listing_prefix("x/span-{SPAN}/*.txt") == "x/span-"
    with pytest.raises(ValueError, match="is not a Cloud Storage path"):
        gcs_listing.paths_under(client, "/local/x")


def test_force_needs_if_new_span(retrain_spec, clouds, capsys):
    clouds([], _spans(1))
    assert cli.main(["submit", retrain_spec, "--project", PROJECT, "--region", REGION, "--force"]) == 2
    assert "--force goes with --if_new_span" in capsys.readouterr().err
