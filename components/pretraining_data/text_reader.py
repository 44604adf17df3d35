"""Reads the BERT corpus format in parallel: one sentence per line, blank line between documents.

Plain files are cut into byte ranges so one large file is read by many workers.
A document belongs to the range that holds the first byte of its first line; a
reader starts at the first document that begins in its range and reads past the
range end to finish its last document. So every document is read exactly once,
whole, whatever the range size, and the output does not depend on it.
Gzip files cannot be cut (no random access) and are one range each.

Differences from google-research/bert's reader, both deliberate:
  * Documents never continue across files (the original carries the last
    document of one file into the next file when a file lacks a final blank line).
  * Invalid UTF-8 bytes are dropped (the original's `convert_to_unicode` does
    `decode("utf-8", "ignore")` for bytes; Python 3 text mode would crash instead).
"""
import dataclasses
import logging
import os
from typing import Dict, Iterator, List, Sequence, Tuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

_GZIP_SUFFIXES = (".gz", ".gzip")
_BACKWARD_CHUNK = 4096
_SEGMENT_BYTES = 16 << 20


@dataclasses.dataclass(frozen=True)
class FileRange:
    """Bytes [start, end) of `path`; end is None for 'to the end of the file'."""

    path: str
    start: int
    end: "int | None"
    gzip: bool


@dataclasses.dataclass(frozen=True)
class InputFile:
    path: str
    size_bytes: int


def split_patterns(patterns) -> List[str]:
    """`--input_file` semantics: a list or a comma-separated string of files or globs."""
    if isinstance(patterns, str):
        patterns = [patterns]
    out = []
    for p in patterns:
        out.extend(x.strip() for x in str(p).split(",") if x.strip())
    return out


def expand_patterns(patterns: Sequence[str], option_name: str = "--input_file") -> List[InputFile]:
    """Lists the files matched by files/globs (local, gs://, ...), sorted and de-duplicated.

    Raises:
      ValueError: no pattern given, or a pattern matches no file (names the pattern).
    """
    patterns = split_patterns(patterns)
    if not patterns:
        raise ValueError(f"{option_name} is empty: give text files or globs, comma-separated.")
    found = {}
    for pattern in patterns:
        try:
            results = FileSystems.match([pattern])[0].metadata_list
        except Exception as e:  # Beam raises BeamIOError for a bad scheme, missing bucket, ...
            raise ValueError(f"{option_name}: cannot list {pattern!r}: {e}") from e
        files = [m for m in results if not m.path.endswith(os.sep)]
        if not files:
            raise ValueError(f"{option_name}: {pattern!r} matches no file. Check the path or "
                             "glob (quote globs so the shell does not expand them).")
        for m in files:
            found[m.path] = InputFile(m.path, int(m.size_in_bytes))
    return [found[p] for p in sorted(found)]


def is_gzip(path: str) -> bool:
    return path.lower().endswith(_GZIP_SUFFIXES)


def split_ranges(files: Sequence[InputFile], range_bytes: int) -> List[FileRange]:
    """Cuts plain files into ranges of about `range_bytes`; gzip files stay whole."""
    if range_bytes < 1:
        raise ValueError(f"range_bytes={range_bytes} must be >= 1.")
    ranges = []
    for f in files:
        if is_gzip(f.path) or f.size_bytes <= range_bytes:
            ranges.append(FileRange(f.path, 0, None, is_gzip(f.path)))
            continue
        for start in range(0, f.size_bytes, range_bytes):
            end = start + range_bytes
            ranges.append(FileRange(f.path, start, None if end >= f.size_bytes else end, False))
    return ranges


# A corpus with more than this share of its bytes not valid UTF-8 is refused: that is
# not text with a few stray bytes (which are dropped, as the original drops them) but
# binary data, compressed files without a .gz name, or another encoding (Latin-1 prose
# is a few percent invalid; random bytes are ~70%).
MAX_INVALID_UTF8_SHARE = 0.01


def count_invalid_utf8(data: bytes) -> int:
    """The number of bytes of `data` that are not part of valid UTF-8 (what decoding
    with errors="ignore" drops).

    ASCII text costs one scan (isascii); other valid text one decode attempt with the GIL
    held (~3.5 ms per MB of the shipped corpus, about 1% of the job's CPU time per MB);
    only invalid text pays a second decode.
    """
    if data.isascii():
        return 0
    try:
        data.decode("utf-8")
        return 0
    except UnicodeDecodeError:
        return len(data) - len(data.decode("utf-8", "ignore").encode("utf-8"))


def check_corpus_read(per_file: Dict[str, Dict[str, int]], patterns: Sequence[str],
                      input_flag: str) -> None:
    """Refuses a corpus that is empty, blank, or not text, from what reading found.

    Args:
      per_file: {path: {"bytes", "invalid_utf8_bytes", "documents"}} as reading found them.
      patterns: the corpus patterns, to name them.
      input_flag: the caller's name for them (--input_file, or --corpus under `bertpipe run`).

    Raises:
      ValueError: no bytes at all; no document (only blank lines); more than
        MAX_INVALID_UTF8_SHARE of a file's bytes invalid UTF-8 (names the file).
    Logs a warning when some bytes, below that share, are invalid (they are dropped).
    """
    total_bytes = sum(c.get("bytes", 0) for c in per_file.values())
    if total_bytes == 0:
        raise ValueError(f"{input_flag} {list(patterns)}: the files are empty (0 bytes); give "
                         "text files, one sentence per line, a blank line between documents.")
    limit = MAX_INVALID_UTF8_SHARE
    for path, counts in sorted(per_file.items()):
        invalid, size = counts.get("invalid_utf8_bytes", 0), counts.get("bytes", 0)
        if size and invalid / size > limit:
            raise ValueError(
                f"{input_flag}: {path} is not UTF-8 text: {invalid / size:.1%} of its {size} bytes are "
                f"invalid UTF-8 (at most {limit:.0%} is accepted); give UTF-8 text (convert other "
                f"encodings with iconv, decompress archives, name gzip files *.gz).")
        if invalid:
            logging.getLogger(__name__).warning(
                "%s: %s has %d invalid UTF-8 bytes (%.3f%% of %d); they are dropped, as the original "
                "does.", input_flag, path, invalid, 100 * invalid / size, size)
    if sum(c.get("documents", 0) for c in per_file.values()) == 0:
        raise ValueError(f"{input_flag} {list(patterns)}: the files hold only blank lines "
                         f"({total_bytes} bytes of whitespace): no document to train on; documents "
                         "are lines of text separated by a blank line.")


def is_blank(line: bytes) -> bool:
    """The original's document delimiter: a line that is empty after str.strip()."""
    stripped = line.strip()  # ASCII whitespace: the usual case, no decoding needed
    if not stripped:
        return True
    if stripped[0] < 0x80 and stripped[0] > 0x20:
        return False  # starts with a visible ASCII character
    return not line.decode("utf-8", "ignore").strip()


def read_documents(file_range: FileRange) -> Iterator[List[bytes]]:
    """Yields each document owned by `file_range` as its non-blank lines (raw bytes, stripped).

    Lines are not decoded here: the tokenizer decodes a whole batch at once.
    """
    with _open(file_range) as f:
        pos, prev_blank = _first_line(f, file_range.start)
        end = file_range.end
        document = None
        while True:
            if document is None and end is not None and pos >= end:
                break  # documents starting at or after `end` belong to the next range
            line = f.readline()
            if not line:
                break
            blank = is_blank(line)
            if blank:
                if document:
                    yield document
                document = None
            elif document is not None:
                document.append(line.strip())
            elif prev_blank and (end is None or pos < end):
                document = [line.strip()]
            # else: the tail of a document owned by the previous range.
            prev_blank = blank
            pos += len(line)
        if document:
            yield document


def read_segments(file_range: FileRange) -> Iterator[Tuple[bytes, bool, int]]:
    """The bytes holding the documents owned by `file_range`, for _documents.bucket_documents.

    Yields (segment, prev_blank, limit): a segment is whole lines, at most
    ~16 MB plus the rest of the document open at its end (so memory stays
    bounded for a gzip file, which is one range); prev_blank tells whether the
    line before it is blank; documents starting at or after offset `limit` of
    the segment belong to the next range (-1: no limit). read_documents gives
    the same documents line by line.
    """
    with _open(file_range) as f:
        pos, prev_blank = _first_line(f, file_range.start)
        end = file_range.end
        while end is None or pos < end:
            data = f.read(_SEGMENT_BYTES if end is None else min(_SEGMENT_BYTES, end - pos))
            if not data:
                return
            if not data.endswith(b"\n"):
                data += f.readline()  # finish the last line
            body = data[:-1] if data.endswith(b"\n") else data
            if not is_blank(body[body.rfind(b"\n") + 1:]):
                tail = []  # finish the open document: lines up to a blank one
                for line in iter(f.readline, b""):
                    tail.append(line)
                    if is_blank(line):
                        break
                data += b"".join(tail)
            yield data, prev_blank, -1 if end is None else end - pos
            pos += len(data)
            prev_blank = True  # a segment ends with a blank line (or the file)


def _open(file_range: FileRange):
    compression = CompressionTypes.GZIP if file_range.gzip else CompressionTypes.UNCOMPRESSED
    return FileSystems.open(file_range.path, compression_type=compression)


def _first_line(f, start: int):
    """Seeks `f` to the first line starting at or after byte `start`.

    Returns:
      (that line's offset, whether the line before it is blank).
    """
    if start == 0:
        return 0, True
    f.seek(start - 1)
    # The rest of the line holding byte start-1; the next line starts at >= start.
    pos = start - 1 + len(f.readline())
    prev_blank = _line_before_is_blank(f, pos)
    f.seek(pos)
    return pos, prev_blank


def _line_before_is_blank(f, line_start: int) -> bool:
    """Whether the line ending just before `line_start` (a line start > 0) is blank.

    Reads backwards and stops at the first visible ASCII byte, so a very long
    previous line costs one chunk, not the whole line.
    """
    if line_start <= 0:
        return True
    pos = line_start - 1  # f[pos] is the '\n' ending the previous line (or EOF)
    chunks = []
    while pos > 0:
        size = min(_BACKWARD_CHUNK, pos)
        f.seek(pos - size)
        chunk = f.read(size)
        newline = chunk.rfind(b"\n")
        piece = chunk[newline + 1:] if newline >= 0 else chunk
        if any(0x20 < b < 0x7F for b in piece):
            return False
        chunks.append(piece)
        if newline >= 0:
            break
        pos -= size
    return is_blank(b"".join(reversed(chunks)))
