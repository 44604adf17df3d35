"""Corpus reading: documents are the same whatever the byte ranges; bad inputs."""
import gzip

import pytest

from components.pretraining_data import text_reader

from test_pretraining_fixtures import corpus_text


def _read(path, range_bytes):
    files = text_reader.expand_patterns([str(path)])
    return [d for r in text_reader.split_ranges(files, range_bytes)
            for d in text_reader.read_documents(r)]


def test_documents_independent_of_range_size(tmp_path):
    text = corpus_text(30, seed=1)
    # Whitespace-only lines, runs of blank lines, CRLF and no final newline.
    text = text.replace("\n\n", "\n \t\n\n", 3).replace("\n\n", "\r\n\r\n", 2).rstrip("\n")
    path = tmp_path / "c.txt"
    path.write_bytes(text.encode())
    whole = _read(path, 10**9)
    assert len(whole) == 30
    expected = [[line.strip().encode() for line in doc.strip().splitlines() if line.strip()]
                for doc in text.replace("\r", "").replace(" \t", "").split("\n\n") if doc.strip()]
    assert whole == expected
    for range_bytes in (3, 7, 50, 333, 1000):
        assert _read(path, range_bytes) == whole, range_bytes


def test_gzip_globs_commas_empty_and_invalid_utf8(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"one \xff\xfe bad.\ntwo.\n\nthree.\n")
    with gzip.open(tmp_path / "b.txt.gz", "wb") as f:
        f.write(b"four.\nfive.\n")
    (tmp_path / "empty.txt").write_bytes(b"")
    files = text_reader.expand_patterns([f"{tmp_path}/*.txt,{tmp_path}/b.txt.gz"])
    assert [f.path.rsplit("/", 1)[1] for f in files] == ["a.txt", "b.txt.gz", "empty.txt"]
    docs = [d for r in text_reader.split_ranges(files, 4) for d in text_reader.read_documents(r)]
    # Raw bytes are kept here; the tokenizer drops invalid UTF-8.
    assert docs == [[b"one \xff\xfe bad.", b"two."], [b"three."], [b"four.", b"five."]]


def test_pattern_matching_nothing_names_it(tmp_path):
    with pytest.raises(ValueError, match="nothing_here.*matches no file"):
        text_reader.expand_patterns([str(tmp_path / "nothing_here*.txt")])
    with pytest.raises(ValueError, match="--input_file is empty"):
        text_reader.expand_patterns([" , "])


def test_very_long_line_is_one_sentence(tmp_path):
    long_line = b"word " * 200_000
    (tmp_path / "long.txt").write_bytes(b"first.\n" + long_line + b"\n\nnext doc.\n")
    docs = _read(tmp_path / "long.txt", 100_000)
    assert len(docs) == 2 and docs[0][1] == long_line.strip()


def _reference_documents(data: bytes):
    """The original's reading: a line blank after str.strip() (Unicode whitespace too)
    ends a document; lines are kept stripped of ASCII whitespace."""
    docs, doc = [], []
    for line in data.split(b"\n"):
        if not line.decode("utf-8", "ignore").strip():
            if doc:
                docs.append(doc)
            doc = []
        else:
            doc.append(line.strip())
    return docs + ([doc] if doc else [])


def test_unicode_blank_lines_and_block_boundaries(tmp_path):
    """Lines of only Unicode whitespace separate documents; lines that start with a
    non-ASCII letter or a control character do not; documents longer than a read block
    and ranges that end mid-document are read whole, once."""
    lines = []
    for k in range(400):
        lines += [f"Doc {k} first.".encode(), "\u00e9t\u00e9 second.".encode(),
                  b"\x01odd start.", ("x" * (k * 37 % 900)).encode() + b" long."]
        lines.append([b"", b"  \t", "\u3000".encode(), "\u00a0 ".encode(), b"\r"][k % 5])
    lines.insert(800, b"word " * 300_000)  # one line longer than a read block
    data = b"\n".join(lines)
    path = tmp_path / "u.txt"
    path.write_bytes(data)
    expected = _reference_documents(data)
    assert len(expected) == 400
    for range_bytes in (10**9, 4 << 20, 100_003, 4093, 997):
        assert _read(path, range_bytes) == expected, range_bytes
