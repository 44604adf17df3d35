"""A glob over Cloud Storage with google-cloud-storage's client, for deciding before a
Vertex AI submission whether a span pattern (`gs://b/corpus/span-{SPAN}/*.txt`) has grown.

Cloud Storage has no directories: a bucket holds objects whose names contain '/', and
listing returns every object whose name starts with a prefix. A "directory" such as
`records/span-3` exists only as the prefix of an object (`records/span-3/train/part-0`),
or as the zero-byte `records/span-3/` placeholder the console creates. So the listing
here takes the pattern's fixed part (up to its first wildcard) as the prefix, and returns
each object together with its implied parent directories, as tf.io.gfile.glob would on
gs://; spans.list_spans then matches them against the pattern. Importing this module
costs no TensorFlow.
"""
from __future__ import annotations

import re
from typing import Callable, Optional

_WILDCARD = re.compile(r"[*?\[{]")


def split_gcs_uri(uri: str) -> tuple[str, str]:
    """`gs://bucket/a/b` -> (`bucket`, `a/b`); ValueError for anything else."""
    if not uri.startswith("gs://") or not uri[len("gs://"):].split("/", 1)[0]:
        raise ValueError(f"{uri} is not a Cloud Storage path (gs://BUCKET/...).")
    bucket, _, path = uri[len("gs://"):].partition("/")
    return bucket, path


def listing_prefix(path: str) -> str:
    """The part of an object-name pattern before its first wildcard or placeholder."""
    match = _WILDCARD.search(path)
    return path if match is None else path[:match.start()]


def paths_under(client, pattern: str) -> list[str]:
    """gs:// paths of the objects under the pattern's fixed prefix and of their implied
    directories, sorted. Matching them against the pattern is the caller's job.

    Args:
      client: a google.cloud.storage.Client (or anything with its `list_blobs`).
      pattern: `gs://bucket/path` with wildcards (*, ?, [..]) or placeholders ({SPAN}).
    """
    bucket, path = split_gcs_uri(pattern)
    prefix = listing_prefix(path)
    found = set()
    for blob in client.list_blobs(bucket, prefix=prefix):
        parts = blob.name.rstrip("/").split("/")  # a `dir/` placeholder names the directory
        for end in range(1, len(parts) + 1):
            found.add("/".join(parts[:end]))
    return [f"gs://{bucket}/{name}" for name in sorted(found) if name.startswith(prefix.rstrip("/"))]


def gcs_glob(project: Optional[str] = None, client=None) -> Callable[[str], list[str]]:
    """A glob function for spans.list_spans that lists Cloud Storage with `client`
    (default: a storage.Client with Application Default Credentials).

    The returned function raises ValueError in one line when the bucket does not exist,
    access is refused or there are no credentials.
    """
    def glob(pattern: str) -> list[str]:
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions

        nonlocal client
        try:
            if client is None:
                from google.cloud import storage  # Deferred: only when Cloud Storage is listed.

                client = storage.Client(project=project)
            return paths_under(client, pattern)
        except auth_exceptions.DefaultCredentialsError as e:
            raise ValueError(f"Cannot list {pattern}: no Google Cloud credentials; run `gcloud auth "
                             "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS.") from e
        except api_exceptions.NotFound as e:
            raise ValueError(f"Cannot list {pattern}: bucket gs://{split_gcs_uri(pattern)[0]} does not exist "
                             f"({e.message}).") from e
        except api_exceptions.GoogleAPICallError as e:
            raise ValueError(f"Cannot list {pattern}: {type(e).__name__}: {e.message}") from e

    return glob
