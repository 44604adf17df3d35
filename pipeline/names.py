"""Checks of the names a Vertex AI spec carries: container images and Cloud Storage URIs.

Run at compile and submit time, so a typo fails here with the flag named, not minutes
later inside Vertex AI.
"""
from __future__ import annotations

import re
from typing import Optional

# Docker's reference grammar, simplified: [registry[:port]/]path[:tag][@sha256:digest],
# path components lowercase.
_REGISTRY = r"(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?/)"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_IMAGE = re.compile(rf"^{_REGISTRY}?{_PATH}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?$")
# Cloud Storage bucket names: 3-63 characters, lowercase letters, digits, -, _ and dots.
_GCS = re.compile(r"^gs://([a-z0-9][a-z0-9._-]{1,61}[a-z0-9])(/.*)?$")


def check_image(flag: str, image: Optional[str]) -> str:
    """`image` if it is a container image reference a registry accepts; else ValueError naming `flag`."""
    if not image:
        raise ValueError(f"{flag} is missing: give the container image built from kubeflow/Dockerfile "
                         f"(e.g. us-docker.pkg.dev/PROJECT/REPO/bert-tfx-pipeline:TAG).")
    if not _IMAGE.match(image) or "/" not in image:
        raise ValueError(f"{flag} {image!r} is not a container image name: expected REGISTRY/PATH[:TAG] with a "
                         f"lowercase path, e.g. gcr.io/my-project/bert-tfx-pipeline:1.")
    return image


def check_gcs_uri(flag: str, uri: Optional[str]) -> str:
    """`uri` if it is gs://BUCKET[/path] with a valid bucket name; else ValueError naming `flag`."""
    if not uri:
        raise ValueError(f"{flag} is missing: Vertex AI needs a Cloud Storage location, gs://BUCKET/path.")
    if not _GCS.match(uri):
        raise ValueError(f"{flag} {uri!r} is not a Cloud Storage location: Vertex AI reads and writes only "
                         f"gs://BUCKET/path (a bucket name has 3-63 lowercase letters, digits, '-', '_' or '.').")
    return uri
