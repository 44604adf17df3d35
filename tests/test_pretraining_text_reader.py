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


def _grouped_in_c(path, range_bytes, num_buckets, seed=5, eval_fraction=0.3):
    """The Beam job's reading: segments -> _documents.bucket_documents -> decoded blocks."""
    from components.pretraining_data import _documents, beam_job, bucket

    out = {}
    files = text_reader.expand_patterns([str(path)])
    for r in text_reader.split_ranges(files, range_bytes):
        for segment, prev_blank, limit in text_reader.read_segments(r):
            blocks, count = _documents.bucket_documents(
                segment, limit, prev_blank, seed, eval_fraction, num_buckets["train"],
                num_buckets["eval"])
            docs = [d for _, _, block in blocks for d in beam_job.decode_documents(block)]
            assert count == len(docs)
            for split_index, b, block in blocks:
                out.setdefault((bucket.SPLITS[split_index], b), []).extend(
                    (h, text.split(b"\n")) for h, text in beam_job.decode_documents(block))
    return {k: sorted(v) for k, v in out.items()}


def _grouped_in_python(path, num_buckets, seed=5, eval_fraction=0.3):
    from components.pretraining_data import bucket

    out = {}
    for doc in _read(path, 10**9):
        h = bucket.document_hash(doc, seed)
        out.setdefault(bucket.assign(h, eval_fraction, num_buckets), []).append((h, doc))
    return {k: sorted(v) for k, v in out.items()}


def test_c_reader_groups_the_same_documents_as_the_python_reader(tmp_path, monkeypatch):
    """_documents.c (the Beam job's reader) finds the same documents, hashes and
    (split, bucket) as read_documents + bucket.document_hash + bucket.assign, for any
    range size, with Unicode blank lines, invalid UTF-8, CRLF, a block-sized line, a
    missing final newline, and in a gzip file."""
    lines = []
    for k in range(300):
        lines += [f"Doc {k} first.".encode(), "\u00e9t\u00e9 second \u3000.".encode(),
                  b"bad \xff\xfe bytes, \xe3\x80 cut.", b"\x01odd start."]
        lines.append([b"", b" \t", "\u3000".encode(), "\u00a0\u2028".encode(), b"\r",
                      b"\xff", b"\xe3\x80"][k % 7])
    lines.insert(600, b"word " * 300_000)
    data = b"\n".join(lines)  # no final newline
    num_buckets = {"train": 5, "eval": 2}
    path = tmp_path / "c.txt"
    path.write_bytes(data)
    expected = _grouped_in_python(path, num_buckets)
    assert sum(len(v) for v in expected.values()) > 200 and ("eval", 1) in expected
    for range_bytes in (10**9, 100_003, 4093, 997):
        assert _grouped_in_c(path, range_bytes, num_buckets) == expected, range_bytes
    gz = tmp_path / "c.txt.gz"
    with gzip.open(gz, "wb") as f:
        f.write(data)
    assert _grouped_in_c(gz, 10**9, num_buckets) == expected
    monkeypatch.setattr(text_reader, "_SEGMENT_BYTES", 3001)  # many segments per range
    assert _grouped_in_c(gz, 10**9, num_buckets) == expected
    assert _grouped_in_c(path, 100_003, num_buckets) == expected


def test_count_invalid_utf8_counts_the_bytes_decoding_drops():
    from components.pretraining_data.text_reader import count_invalid_utf8

    assert count_invalid_utf8(b"plain ascii\n") == 0
    assert count_invalid_utf8("caf\u00e9 \u00fcber\n".encode("utf-8")) == 0
    assert count_invalid_utf8(b"caf\xe9 \xff\xfe ok") == 3  # Latin-1 e-acute and two stray bytes
    assert count_invalid_utf8("\u00e9".encode("utf-8")[:1] + b"x") == 1  # a cut multi-byte sequence
