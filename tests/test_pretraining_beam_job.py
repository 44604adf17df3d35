"""The Beam job end to end on tiny corpora: layout, schema, split by document, determinism,
atomic output, bad inputs."""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from components.pretraining_data import beam_job, bucket, schema
from components.pretraining_data.options import PretrainingDataOptions

from test_pretraining_fixtures import corpus_text, marker_ids, write_vocab

SEQ, PRED = 32, 5
OPTIONS = PretrainingDataOptions(max_seq_length=SEQ, max_predictions_per_seq=PRED, dupe_factor=3,
                                 num_shards=2, eval_fraction=0.3)
IN_PROCESS = ["--direct_num_workers=1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    (d / "corpus_a.txt").write_text(corpus_text(30, seed=1))
    (d / "corpus_b.txt").write_text(corpus_text(30, seed=2, first_doc=30, min_sentences=1))
    (d / "corpus_empty.txt").write_text("")
    return d, write_vocab(d / "vocab.txt")


def _records(pattern):
    return [r.numpy() for f in sorted(glob.glob(pattern)) for r in tf.data.TFRecordDataset(f)]


def _files_bytes(root):
    return {os.path.relpath(p, root): open(p, "rb").read()
            for p in sorted(glob.glob(os.path.join(root, "*", "*.tfrecord")))}


@pytest.fixture(scope="module")
def two_worker_run(corpus, tmp_path_factory):
    d, vocab = corpus
    out = str(tmp_path_factory.mktemp("out") / "records")
    stats = beam_job.run_prepare_data([f"{d}/corpus_*.txt"], vocab, out, OPTIONS,
                                      ["--direct_num_workers=2",
                                       "--direct_running_mode=multi_processing"])
    return out, stats


def test_layout_schema_and_stats(two_worker_run):
    out, stats = two_worker_run
    assert sorted(os.listdir(out)) == ["eval", "manifest.json", "train"]
    for split in ("train", "eval"):
        assert sorted(os.listdir(os.path.join(out, split))) == [
            "part-00000-of-00002.tfrecord", "part-00001-of-00002.tfrecord"]
    assert not glob.glob(out + ".staging-*")
    train = _records(f"{out}/train/*.tfrecord")
    ev = _records(f"{out}/eval/*.tfrecord")
    assert len(train) == stats["num_train_instances"] > 0
    assert len(ev) == stats["num_eval_instances"] > 0
    assert stats["num_documents"] == 60
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["stats"]["num_train_instances"] == len(train)
    assert PretrainingDataOptions(**manifest["options"]) == OPTIONS
    spec = schema.feature_spec(SEQ, PRED)
    for record in train[:50]:
        example = tf.train.Example.FromString(record)
        assert sorted(example.features.feature) == sorted(schema.FEATURE_NAMES)
        p = {k: v.numpy() for k, v in tf.io.parse_single_example(record, spec).items()}
        n = int(p["input_mask"].sum())
        assert (p["input_mask"][:n] == 1).all() and (p["input_ids"][n:] == 0).all()
        assert p["input_ids"][0] == 2 and p["input_ids"][n - 1] == 3  # [CLS] ... [SEP]
        assert (p["segment_ids"][n:] == 0).all() and p["segment_ids"][n - 1] == 1
        k = int(p["masked_lm_weights"].sum())
        assert 1 <= k <= PRED and (p["masked_lm_positions"][:k] < n).all()


def test_stats_count_what_the_records_hold(two_worker_run):
    """The counts that bucket workers and shard writers report add up to the records'."""
    out, stats = two_worker_run
    spec = schema.feature_spec(SEQ, PRED)
    parsed = [tf.io.parse_single_example(r, spec)
              for r in _records(f"{out}/train/*.tfrecord") + _records(f"{out}/eval/*.tfrecord")]
    assert stats["num_masked"] == sum(int(p["masked_lm_weights"].numpy().sum()) for p in parsed)
    assert stats["num_random_next"] == sum(int(p["next_sentence_labels"].numpy()[0])
                                           for p in parsed)
    assert stats["num_documents"] == stats["num_train_documents"] + stats["num_eval_documents"]
    assert stats["num_tokens"] > stats["num_sentences"] > stats["num_documents"]
    assert not os.path.exists(os.path.join(out, "_stats"))


def test_garbage_collection_is_unfrozen_after_a_run(corpus, tmp_path):
    """The job freezes long-lived objects out of the collector while it runs, and only then."""
    import gc

    d, vocab = corpus
    frozen_before = gc.get_freeze_count()
    beam_job.run_prepare_data([f"{d}/corpus_a.txt"], vocab, str(tmp_path / "ok"), OPTIONS,
                              IN_PROCESS)
    assert gc.get_freeze_count() == frozen_before
    with pytest.raises(ValueError):
        beam_job.run_prepare_data([f"{d}/corpus_empty.txt"], vocab, str(tmp_path / "bad"),
                                  OPTIONS, IN_PROCESS)
    assert gc.get_freeze_count() == frozen_before


def test_collector_paused_for_the_import_then_restored_and_new_objects_frozen():
    """While TensorFlow is imported the collector is off; afterwards it is as before, and
    inside a job (objects frozen) the objects made meanwhile are frozen too."""
    import gc

    assert gc.isenabled()
    frozen_before = gc.get_freeze_count()
    with beam_job._collector_paused():
        assert not gc.isenabled()
        unfrozen = [[i] for i in range(1000)]  # containers, tracked by the collector
    assert gc.isenabled() and len(unfrozen) == 1000
    assert gc.get_freeze_count() == frozen_before  # no job running: nothing frozen

    gc.freeze()  # as _long_lived_objects_frozen does for a job
    try:
        frozen = gc.get_freeze_count()
        with beam_job._collector_paused():
            made = [[i] for i in range(1000)]
        assert gc.get_freeze_count() >= frozen + len(made)
        assert gc.isenabled()
    finally:
        gc.unfreeze()

    gc.disable()  # a caller that turned the collector off keeps it off
    try:
        with beam_job._collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_tokenizer_build_logs_its_duration(corpus):
    """The build's "Tokenizer ready" record carries its seconds (the benchmark reads them
    with a handler on the job's logger, as here: the CLI stops project records from
    propagating to the root logger)."""
    import logging

    _, vocab = corpus
    job_log = logging.getLogger(beam_job.__name__)
    records, level = [], job_log.level

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep(logging.INFO)
    job_log.addHandler(handler)
    job_log.setLevel(logging.INFO)
    try:
        tokenizer = beam_job._build_tokenizer.__wrapped__(vocab, True)  # not the cached one
    finally:
        job_log.removeHandler(handler)
        job_log.setLevel(level)
    records = [r for r in records if hasattr(r, "tokenizer_build_seconds")]
    assert len(records) == 1 and records[0].name == beam_job.__name__
    assert 0 < records[0].tokenizer_build_seconds < 600
    assert "Tokenizer ready in" in records[0].getMessage()
    assert len(tokenizer.tokenize_text(b"hello world")[1]) == 1  # one line tokenised


def test_train_and_eval_are_disjoint_by_document(two_worker_run):
    out, _ = two_worker_run
    markers = marker_ids()
    spec = schema.feature_spec(SEQ, PRED)

    def docs(split):
        found = set()
        for record in _records(f"{out}/{split}/*.tfrecord"):
            p = {k: v.numpy() for k, v in tf.io.parse_single_example(record, spec).items()}
            ids = p["input_ids"].copy()
            w = p["masked_lm_weights"] > 0
            ids[p["masked_lm_positions"][w]] = p["masked_lm_ids"][w]  # undo the masking
            found |= {markers[i] for i in ids.tolist() if i in markers}
        return found

    train, ev = docs("train"), docs("eval")
    assert train and ev and not train & ev
    assert len(train | ev) == 60


def test_deterministic_and_independent_of_worker_count(two_worker_run, corpus, tmp_path):
    out, stats = two_worker_run
    d, vocab = corpus
    again = str(tmp_path / "again")
    stats2 = beam_job.run_prepare_data([f"{d}/corpus_*.txt"], vocab, again, OPTIONS, IN_PROCESS)
    assert _files_bytes(again) == _files_bytes(out)
    assert stats2["num_train_instances"] == stats["num_train_instances"]
    threads = str(tmp_path / "threads")  # the local default: 2 worker threads
    beam_job.run_prepare_data([f"{d}/corpus_*.txt"], vocab, threads, OPTIONS,
                              ["--direct_num_workers=2"])
    assert _files_bytes(threads) == _files_bytes(out)
    other_seed = str(tmp_path / "other")
    beam_job.run_prepare_data([f"{d}/corpus_*.txt"], vocab, other_seed,
                              PretrainingDataOptions(**{**json.loads(OPTIONS.to_json()),
                                                        "random_seed": 1}), IN_PROCESS)
    assert _files_bytes(other_seed) != _files_bytes(out)


def test_output_file_mode_and_nsp_balance(corpus, tmp_path):
    d, vocab = corpus
    target = tmp_path / "single" / "out.tfrecord"
    opts = PretrainingDataOptions(max_seq_length=SEQ, max_predictions_per_seq=PRED, dupe_factor=5)
    stats = beam_job.run_prepare_data_to_files([str(d / "corpus_a.txt")], vocab, [str(target)], opts,
                                               IN_PROCESS)
    records = _records(str(target))
    assert len(records) == stats["num_train_instances"] and stats["num_eval_instances"] == 0
    assert sorted(os.listdir(tmp_path / "single")) == ["out.tfrecord"]
    labels = [tf.train.Example.FromString(r).features.feature["next_sentence_labels"]
              .int64_list.value[0] for r in records]
    # ~50% random next, a bit more from one-sentence chunks (always random, as BERT).
    assert 0.4 < np.mean(labels) < 0.7


def test_replaces_existing_output_atomically_and_failure_leaves_no_output(corpus, tmp_path,
                                                                           monkeypatch):
    d, vocab = corpus
    out = tmp_path / "records"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    beam_job.run_prepare_data([str(d / "corpus_a.txt")], vocab, str(out), OPTIONS, IN_PROCESS)
    assert sorted(os.listdir(out)) == ["eval", "manifest.json", "train"]
    before = _files_bytes(str(out))

    def boom(*args, **kwargs):
        raise RuntimeError("worker failed")

    monkeypatch.setattr(bucket, "process_spill_blocks", boom)
    with pytest.raises(Exception, match="worker failed"):
        beam_job.run_prepare_data([str(d / "corpus_a.txt")], vocab, str(out), OPTIONS, IN_PROCESS)
    assert _files_bytes(str(out)) == before  # old output untouched
    assert sorted(os.listdir(tmp_path)) == ["records"]  # no staging left
    fresh = tmp_path / "fresh"
    with pytest.raises(Exception, match="worker failed"):
        beam_job.run_prepare_data([str(d / "corpus_a.txt")], vocab, str(fresh), OPTIONS, IN_PROCESS)
    assert sorted(os.listdir(tmp_path)) == ["records"]


def test_bad_inputs_fail_early_with_the_culprit_named(corpus, tmp_path):
    d, vocab = corpus
    out = str(tmp_path / "o")
    bad_vocab = tmp_path / "bad_vocab.txt"
    bad_vocab.write_text("[PAD]\n[UNK]\nhello\n")
    with pytest.raises(ValueError, match="bad_vocab.txt.*lacks"):
        beam_job.run_prepare_data([str(d / "corpus_a.txt")], str(bad_vocab), out, OPTIONS, IN_PROCESS)
    with pytest.raises(ValueError, match="nope.*matches no file"):
        beam_job.run_prepare_data([str(d / "nope*.txt")], vocab, out, OPTIONS, IN_PROCESS)
    with pytest.raises(ValueError, match="max_seq_length"):
        beam_job.run_prepare_data([str(d / "corpus_a.txt")], vocab, out,
                                  PretrainingDataOptions(max_seq_length=7), IN_PROCESS)
    with pytest.raises(ValueError, match=r"--input_file .*corpus_empty.txt.*empty \(0 bytes\)"):
        beam_job.run_prepare_data([str(d / "corpus_empty.txt")], vocab, out, OPTIONS, IN_PROCESS)
    assert os.listdir(tmp_path) == ["bad_vocab.txt"]


def _hashed_documents(text):
    """Corpus text (blank line between documents) -> (hash, text) pairs, seed 0."""
    return [(bucket.document_hash(doc.split(b"\n"), 0), doc)
            for doc in text.strip().split(b"\n\n")]


def _shard_writer_run(staging, vocab, documents, monkeypatch=None):
    """Pieces of one bucket -> _WriteShards.process for shard 0; returns its shard bytes.

    With monkeypatch, the first attempt fails at the stats write and the second is a retry.
    """
    os.makedirs(os.path.join(staging, "_pieces"))
    os.makedirs(os.path.join(staging, "_stats"))
    os.makedirs(os.path.join(staging, "train"))
    tokenizer = beam_job._tokenizer_for(vocab, True)
    pieces, stats = bucket.process_bucket("train", 0, documents, tokenizer, OPTIONS, num_pieces=2)
    element = []
    for index, piece in enumerate(pieces):
        path = os.path.join(staging, "_pieces", f"train-{index:07d}.instances")
        open(path, "wb").write(piece.to_bytes())
        element.append(("train", index, path, stats.__dict__ if index == 0 else None))
    writer = beam_job._WriteShards(vocab, OPTIONS, staging)
    writer.setup()
    if monkeypatch:
        def disk_full(*args):
            raise OSError("disk full")

        monkeypatch.setattr(beam_job, "_write_json", disk_full)
        with pytest.raises(OSError, match="disk full"):
            writer.process((0, list(reversed(element))))
        monkeypatch.undo()
    writer.process((0, element))
    assert os.listdir(os.path.join(staging, "_pieces")) == []  # deleted once written
    stats_file = json.load(open(os.path.join(staging, "_stats", "shard-00000.json")))
    return open(os.path.join(staging, beam_job.shard_name("train", 0, 2)), "rb").read(), stats_file


def test_a_shard_writer_retried_after_a_failure_writes_the_same_shard(corpus, tmp_path,
                                                                      monkeypatch):
    """A work item that fails after writing its records (here: the stats write) keeps its
    pieces, so the retry (Dataflow retries failed work items) rewrites the same bytes."""
    d, vocab = corpus
    text = (d / "corpus_a.txt").read_bytes()
    documents = _hashed_documents(text)
    once, stats_once = _shard_writer_run(str(tmp_path / "a"), vocab, documents)
    retried, stats_retried = _shard_writer_run(str(tmp_path / "b"), vocab, documents,
                                               monkeypatch)
    assert len(once) > 1000 and retried == once
    assert stats_retried == stats_once and stats_once["train_num_documents"] == 30


def test_join_documents_is_pythons_sort_and_join():
    """_documents.join_documents sorts a bucket's documents as sorted() sorts (hash, text)
    pairs (ties on the hash broken by the text, a prefix first) and joins them."""
    from components.pretraining_data import _documents

    rng = np.random.default_rng(3)
    hashes = [bytes(rng.integers(0, 256, 16, dtype=np.uint8)) for _ in range(40)]
    docs = []
    for i in range(300):
        text = b"\n".join(bytes(rng.integers(97, 100, rng.integers(1, 6), dtype=np.uint8))
                          for _ in range(rng.integers(1, 4)))
        docs.append((hashes[i % 40], text))  # 40 hashes: many ties
    docs += [(hashes[0], b"ab"), (hashes[0], b"a"), (hashes[0], b"abc"), (hashes[1], b"a\xff\nb")]
    order = rng.permutation(len(docs))
    blocks = [beam_job.encode_documents([docs[i] for i in part])
              for part in np.array_split(order, 7)]
    assert [d for b in blocks for d in beam_job.decode_documents(b)] == [docs[i] for i in order]
    text, starts, lines = _documents.join_documents(blocks + [b""])
    expected = [t for _, t in sorted(docs)]
    assert text == b"\n".join(expected)
    starts = np.frombuffer(starts, np.int64)
    assert starts.tolist() == np.cumsum([0] + [len(t) + 1 for t in expected]).tolist()
    assert [text[a:b - 1] for a, b in zip(starts[:-1], starts[1:])] == expected
    assert np.frombuffer(lines, np.int64).tolist() == [t.count(b"\n") + 1 for t in expected]
    empty = _documents.join_documents([])
    assert empty[0] == b"" and np.frombuffer(empty[1], np.int64).tolist() == [0]
    with pytest.raises(ValueError, match="spill block 1 is truncated at byte 0"):
        _documents.join_documents([blocks[0], blocks[1][:19]])
    with pytest.raises(ValueError, match="spill block 0 is truncated at byte 0"):
        _documents.join_documents([blocks[0][:30]])


def test_spill_blocks_make_the_same_bucket_as_documents(corpus, monkeypatch):
    """The job's path (spill blocks joined in C) gives the same pieces and statistics as
    process_bucket on the decoded documents, with the tokenizer cut into several batches."""
    d, vocab = corpus
    tokenizer = beam_job._tokenizer_for(vocab, True)
    text = (d / "corpus_a.txt").read_bytes() + b"\n\n" + (d / "corpus_b.txt").read_bytes()
    documents = _hashed_documents(text)
    blocks = [beam_job.encode_documents(documents[i::3]) for i in range(3)]
    for batch_bytes in (bucket._TOKENIZE_BATCH_BYTES, 500):
        monkeypatch.setattr(bucket, "_TOKENIZE_BATCH_BYTES", batch_bytes)
        pieces, stats = bucket.process_bucket("train", 4, documents, tokenizer, OPTIONS, 3)
        joined_pieces, joined_stats = bucket.process_spill_blocks("train", 4, blocks,
                                                                  tokenizer, OPTIONS, 3)
        assert stats == joined_stats and stats.num_documents == 60
        assert [p.to_bytes() for p in pieces] == [p.to_bytes() for p in joined_pieces]


@pytest.mark.parametrize("content, message", [
    (b"\n  \n\t\n\n", r"--corpus .*only blank lines"),
    (b"", r"--corpus .*empty \(0 bytes\)"),
])
def test_blank_and_empty_corpora_are_told_apart_under_the_callers_flag(content, message, corpus, tmp_path):
    d, vocab = corpus
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        beam_job.run_prepare_data([str(path)], vocab, str(tmp_path / "o"), OPTIONS, IN_PROCESS,
                                  input_flag="--corpus")
    assert not os.path.exists(tmp_path / "o")


def test_random_bytes_are_refused_naming_the_file_and_share(corpus, tmp_path):
    d, vocab = corpus
    noise = tmp_path / "noise.txt"
    noise.write_bytes(np.random.default_rng(0).bytes(200_000))
    with pytest.raises(ValueError, match=r"--input_file: .*noise.txt is not UTF-8 text: \d+\.\d% of its "
                                         r"200000 bytes are invalid UTF-8 \(at most 1% is accepted\)"):
        beam_job.run_prepare_data([str(d / "corpus_a.txt"), str(noise)], vocab, str(tmp_path / "o"),
                                  OPTIONS, IN_PROCESS)
    assert not os.path.exists(tmp_path / "o")


def test_a_few_invalid_bytes_are_dropped_with_a_warning(corpus, tmp_path, caplog, monkeypatch):
    d, vocab = corpus
    text = (d / "corpus_a.txt").read_bytes()
    lines = text.split(b"\n")
    lines[3] += b"\xff\xfe"  # two stray bytes: well under 1%
    path = tmp_path / "stray.txt"
    path.write_bytes(b"\n".join(lines))
    import logging

    # bertpipe's configure_logging (run by other tests) stops the project's loggers at
    # "components"; caplog listens on the root logger.
    monkeypatch.setattr(logging.getLogger("components"), "propagate", True)
    with caplog.at_level("WARNING", logger="components.pretraining_data.text_reader"):
        stats = beam_job.run_prepare_data([str(path)], vocab, str(tmp_path / "o"), OPTIONS, IN_PROCESS)
    assert stats["num_train_instances"] > 0
    [warning] = [r.getMessage() for r in caplog.records if "invalid UTF-8" in r.getMessage()]
    assert "stray.txt has 2 invalid UTF-8 bytes" in warning
