"""Data arriving over time as spans, TFX's way: `{SPAN}` (and optionally `{VERSION}`)
placeholders in a file pattern, e.g. `corpus/span-{SPAN}/*.txt` or
`records/span-{SPAN}/v{VERSION}`.

ImportExampleGen resolves such a pattern itself (the latest span, its latest version).
This module does the same for raw text, which VocabularyGen and PretrainingDataGen read,
and for `bertpipe retrain`, which asks whether a span newer than the serving model's
exists. Spans need not be contiguous: a gap (span 3 missing between 2 and 4) is logged
as a warning and otherwise ignored, as ImportExampleGen ignores it.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from typing import Callable, Optional

logger = logging.getLogger(__name__)

SPAN = "{SPAN}"
VERSION = "{VERSION}"


@dataclasses.dataclass(frozen=True)
class Span:
    """One span of a pattern: its number, its newest version (None without {VERSION}), and
    the concrete pattern (placeholders filled in) that lists its files."""

    number: int
    version: Optional[int]
    pattern: str


def has_span(pattern: str) -> bool:
    return SPAN in pattern


def _check(pattern: str) -> None:
    for spec in (SPAN, VERSION):
        if pattern.count(spec) > 1:
            raise ValueError(f"The pattern {pattern} has {spec} more than once; use it once.")
    if VERSION in pattern and SPAN not in pattern:
        raise ValueError(f"The pattern {pattern} has {VERSION} but no {SPAN}; a version belongs to a span.")


def _regex(pattern: str) -> re.Pattern:
    """A regex matching the glob `pattern` with (?P<span>) / (?P<version>) groups."""
    out = []
    for token in re.split(r"(\{SPAN\}|\{VERSION\}|\*\*|\*|\?)", pattern):
        if token == SPAN:
            out.append(r"(?P<span>\d+)")
        elif token == VERSION:
            out.append(r"(?P<version>\d+)")
        elif token == "**":
            out.append(r".*")
        elif token == "*":
            out.append(r"[^/]*")
        elif token == "?":
            out.append(r"[^/]")
        else:
            out.append(re.escape(token))
    return re.compile("".join(out) + r"$")


def _glob(pattern: str) -> list[str]:
    import tensorflow as tf  # Deferred: gfile globs local paths and gs:// alike.

    return tf.io.gfile.glob(pattern)


def list_spans(pattern: str, glob: Optional[Callable[[str], list[str]]] = None) -> list[Span]:
    """Every span the pattern matches, oldest first, each at its newest version.

    Args:
      glob: lists the paths matching a glob (default tf.io.gfile.glob); e.g. a Cloud
        Storage listing that needs no TensorFlow (kubeflow/gcs_listing.py).

    Raises:
      ValueError: the pattern has no {SPAN}, or matches no file.
    """
    _check(pattern)
    if not has_span(pattern):
        raise ValueError(f"The pattern {pattern} has no {SPAN} placeholder.")
    regex = _regex(pattern)
    versions: dict[int, set] = {}
    tokens: dict[tuple, tuple] = {}
    for path in (glob or _glob)(pattern.replace(SPAN, "*").replace(VERSION, "*")):
        match = regex.match(path)
        if not match:
            continue
        span = int(match.group("span"))
        version = int(match.group("version")) if VERSION in pattern else None
        versions.setdefault(span, set()).add(version)
        tokens[(span, version)] = (match.group("span"), match.group("version") if VERSION in pattern else None)
    if not versions:
        raise ValueError(f"No file matches the span pattern {pattern}: put the data of span 0 (or 1) "
                         f"where {SPAN} stands, e.g. {pattern.replace(SPAN, '1').replace(VERSION, '1')}.")
    spans = []
    for number in sorted(versions):
        version = max(versions[number], key=lambda v: -1 if v is None else v)
        span_token, version_token = tokens[(number, version)]
        concrete = pattern.replace(SPAN, span_token)
        if version_token is not None:
            concrete = concrete.replace(VERSION, version_token)
        spans.append(Span(number=number, version=version, pattern=concrete))
    numbers = [s.number for s in spans]
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if missing:
        logger.warning("Spans %s of %s are missing (found %s); the newest span is used as it is.",
                       missing, pattern, numbers)
    return spans


def latest_span(pattern: str, glob: Optional[Callable[[str], list[str]]] = None) -> Span:
    """The newest span of the pattern (see list_spans)."""
    return list_spans(pattern, glob)[-1]


def resolve(pattern: str, which: str = "latest") -> Optional[Span]:
    """The `latest` or `first` span of a pattern with {SPAN}; None for a plain pattern."""
    if not has_span(pattern):
        return None
    spans = list_spans(pattern)
    return spans[-1] if which == "latest" else spans[0]


def records_layout(corpus_pattern: str) -> str:
    """Where PretrainingDataGen puts a span's records under its records directory, as a
    pattern ImportExampleGen resolves: `span-{SPAN}/records` (plus `version-{VERSION}/`
    when the corpus has versions). The fixed last component keeps staging directories
    (`records.staging-...`) out of ImportExampleGen's glob."""
    return "span-{SPAN}/version-{VERSION}/records" if VERSION in corpus_pattern else "span-{SPAN}/records"


def records_subdir(corpus_pattern: str, span: Span) -> str:
    """records_layout with this span's number (and version) filled in."""
    layout = records_layout(corpus_pattern).replace(SPAN, str(span.number))
    return layout.replace(VERSION, str(span.version)) if span.version is not None else layout


def window_subdir(num_spans: int) -> str:
    """Where a rolling window of the newest `num_spans` spans is assembled under the records dir."""
    return f"window-{num_spans}"
