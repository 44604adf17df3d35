"""Vocabulary learning and loading (vocab.py)."""
import os

import apache_beam as beam
import pytest

from components.pretraining_data import beam_job, text_reader, word_counts
from components.pretraining_data import vocab as vocab_lib

from test_pretraining_fixtures import corpus_text, write_vocab


def test_learn_puts_special_tokens_first_and_respects_size(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(corpus_text(40, seed=3) + "Ünïcödé Straße CAFÉ café\n")
    out = tmp_path / "sub" / "vocab.txt"
    n = vocab_lib.learn_vocabulary([str(corpus)], str(out), 120, do_lower_case=True)
    tokens = vocab_lib.load_vocabulary(str(out))
    assert len(tokens) == n <= 120
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert "the" in tokens and not any("é" in t for t in tokens)  # accents stripped
    assert not any(t != t.lower() for t in tokens[5:])  # uncased
    assert [p.name for p in out.parent.iterdir()] == ["vocab.txt"]  # no temp file left

    cased = tmp_path / "cased.txt"
    vocab_lib.learn_vocabulary([str(corpus)], str(cased), 200, do_lower_case=False)
    assert any(t != t.lower() for t in vocab_lib.load_vocabulary(str(cased))[5:])


def test_learn_refuses_empty_input_and_tiny_size(tmp_path):
    (tmp_path / "blank.txt").write_text("\n \n")
    with pytest.raises(ValueError, match=r"--corpus .*blank.txt.*only blank lines"):
        vocab_lib.learn_vocabulary([str(tmp_path / "blank.txt")], str(tmp_path / "v.txt"), 100,
                                   True, input_flag="--corpus")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match=r"--input_file .*empty.txt.*empty \(0 bytes\)"):
        vocab_lib.learn_vocabulary([str(tmp_path / "empty.txt")], str(tmp_path / "v.txt"), 100,
                                   True)
    with pytest.raises(ValueError, match="vocab_size=3"):
        vocab_lib.learn_vocabulary([str(tmp_path / "empty.txt")], str(tmp_path / "v.txt"), 3,
                                   True)


def test_load_refuses_vocab_without_special_tokens_naming_the_file(tmp_path):
    bad = tmp_path / "bad_vocab.txt"
    bad.write_text("[PAD]\n[UNK]\n[CLS]\nhello\n")
    with pytest.raises(ValueError, match=r"bad_vocab\.txt.*\['\[SEP\]', '\[MASK\]'\]"):
        vocab_lib.load_vocabulary(str(bad))
    dup = tmp_path / "dup.txt"
    dup.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nx\nx\n")
    with pytest.raises(ValueError, match="dup.txt.*lines 6 and 7"):
        vocab_lib.load_vocabulary(str(dup))
    with pytest.raises(ValueError, match="missing.txt"):
        vocab_lib.load_vocabulary(str(tmp_path / "missing.txt"))


def test_load_accepts_google_layout(tmp_path):
    # Google's vocabularies have [UNK] at 100 etc.; only presence is required.
    path = tmp_path / "v.txt"
    path.write_text("[PAD]\n" + "".join(f"[unused{i}]\n" for i in range(99))
                    + "[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n")
    tokens = vocab_lib.load_vocabulary(str(path))
    assert tokens.index("[UNK]") == 100 and len(tokens) == 105
    assert len(vocab_lib.load_vocabulary(write_vocab(tmp_path / "tiny.txt"))) > 100


def test_learn_refuses_a_file_that_is_not_utf8_text(tmp_path):
    import numpy as np

    noise = tmp_path / "noise.txt"
    noise.write_bytes(np.random.default_rng(1).bytes(50_000))
    with pytest.raises(ValueError, match=r"--corpus: .*noise.txt is not UTF-8 text"):
        vocab_lib.learn_vocabulary([str(noise)], str(tmp_path / "v.txt"), 100, True, input_flag="--corpus")
    assert not (tmp_path / "v.txt").exists()


# --- The word count on Beam (word_counts.py) -------------------------------------------------

TESTDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata", "vocab_corpus")


@pytest.mark.parametrize("vocab_size,lower,golden", [(300, True, "expected_uncased_300.vocab"),
                                                     (200, False, "expected_cased_200.vocab")])
def test_whole_corpus_count_gives_the_in_process_learners_vocabulary(tmp_path, vocab_size, lower, golden):
    # The goldens were made by the learner that read the lines in one process (at most 2M of
    # them, so all of this corpus); the Beam count over 2 threads must give them token for token.
    out = tmp_path / "vocab.txt"
    vocab_lib.learn_vocabulary([os.path.join(TESTDATA, "part-*.txt")], str(out), vocab_size, lower,
                               beam_pipeline_args=["--direct_num_workers=2"])
    assert out.read_text(encoding="utf-8") == open(os.path.join(TESTDATA, golden), encoding="utf-8").read()


def _count(tmp_path, name, ranges, beam_args, sample_lines=None, seed=0, max_words=word_counts.LEARNER_MAX_INPUT_WORDS):
    import apache_beam as beam

    staging = str(tmp_path / name)
    with beam.Pipeline(options=beam_job.beam_options(beam_args)) as p:
        word_counts.build_pipeline(p, ranges, staging, True, sample_lines, seed, max_words)
    lines = sum(v["lines"] for v in word_counts.read_stats(staging).values())
    return word_counts.read_counts(staging), lines


def test_counts_combine_across_ranges_workers_and_flushes(tmp_path, monkeypatch):
    files = text_reader.expand_patterns([os.path.join(TESTDATA, "part-*.txt")])
    one, lines = _count(tmp_path, "one", text_reader.split_ranges(files, 10**9), ["--direct_num_workers=1"])
    # 8 KB ranges (~30 of them) on 2 threads, partial counts flushed every 50 words: same counts.
    monkeypatch.setattr(word_counts, "MAX_PARTIAL_WORDS", 50)
    monkeypatch.setattr(word_counts, "BATCH_LINES", 64)
    many, lines_many = _count(tmp_path, "many", text_reader.split_ranges(files, 8192), ["--direct_num_workers=2"])
    assert {w: (c, many.get(w)) for w, c in one.items() if many.get(w) != c} == {}
    assert many == one and lines_many == lines == 2218
    assert one["the"] > 1000 and sum(one.values()) > 20_000
    # Above the learner's own input limit, only the most frequent words reach the driver.
    top, _ = _count(tmp_path, "top", text_reader.split_ranges(files, 8192), [], max_words=100)
    assert 0 < len(top) <= 100 and min(top.values()) > max(c for w, c in one.items() if w not in top) - 1
    assert all(one[w] == c for w, c in top.items())


def test_word_count_workers_flush_output_only_between_elements(tmp_path, monkeypatch):
    """Issue 20: the threaded DirectRunner flushed each bundle's output from a timer thread,
    racing the bundle's writes and dropping words on large corpora; no such thread may run."""
    import threading

    from apache_beam.runners.worker import data_plane

    files = text_reader.expand_patterns([os.path.join(TESTDATA, "part-*.txt")])
    timed_flusher_alive = []
    count_words = word_counts.count_words

    def count_and_look(lines, do_lower_case, counts):
        # The timer threads of output buffers (the bundle processor cache has one of its own).
        timed_flusher_alive.append(any(
            isinstance(t, data_plane.PeriodicThread) and "ClosableOutputStream" in t._function.__qualname__
            for t in threading.enumerate()))
        count_words(lines, do_lower_case, counts)

    monkeypatch.setattr(word_counts, "count_words", count_and_look)
    counts, lines = _count(tmp_path, "threads", text_reader.split_ranges(files, 8192), ["--direct_num_workers=2"])
    assert lines == 2218 and counts["the"] > 1000
    assert timed_flusher_alive and not any(timed_flusher_alive)


class _EmitMany(beam.DoFn):
    def __init__(self, n):
        self._n = n

    def process(self, _):
        for i in range(self._n):
            yield i % 1000, 1


def test_threaded_direct_runner_keeps_every_element_of_a_long_bundle():
    """Issue 20's loss itself, without TensorFlow: two bundles each write 600,000 elements
    for over a second (so the old 1 s timer flushed mid-bundle), with the GIL passed between
    threads every 10 us as a loaded machine does; every element must reach the grouping."""
    import sys

    from apache_beam.testing.util import assert_that, equal_to

    n = 600_000
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        with beam.Pipeline(options=beam_job.beam_options(["--direct_num_workers=2"])) as p:
            total = (p | beam.Create([0, 1]) | beam.ParDo(_EmitMany(n)) | beam.GroupByKey()
                     | beam.MapTuple(lambda _, ones: sum(1 for _ in ones)) | beam.CombineGlobally(sum))
            assert_that(total, equal_to([2 * n]))
    finally:
        sys.setswitchinterval(switch)


def test_count_cutoff_keeps_at_most_max_words():
    histogram = {1: 500, 2: 100, 5: 20, 9: 3}
    assert word_counts.count_cutoff(histogram, 1000) == 0
    assert word_counts.count_cutoff(histogram, 623) == 0
    assert word_counts.count_cutoff(histogram, 123) == 2  # 3 + 20 + 100 words counted >= 2 times
    assert word_counts.count_cutoff(histogram, 122) == 3  # the 100 counted twice would make 123
    assert word_counts.count_cutoff(histogram, 22) == 6


LATE_WORD = "zebrafish"


def _late_word_corpus(path, early_lines, late_lines):
    """early_lines lines without LATE_WORD, then late_lines lines where it is the most frequent word."""
    import random

    rng = random.Random(7)
    words = ["the", "cat", "sat", "on", "mat", "ran", "far", "away", "and", "then", "slept", "big"]
    out = []
    for i in range(early_lines + late_lines):
        line = [rng.choice(words) for _ in range(8)]
        if i >= early_lines:
            line += [LATE_WORD] * 3
        out.append(" ".join(line) + ".")
        if i % 10 == 9:
            out.append("")  # documents of 10 lines
    path.write_text("\n".join(out) + "\n")
    return str(path)


# The old learner read the first DEFAULT_MAX_LINES (2,000,000) lines in file order; this
# corpus is the same situation scaled down: OLD_LIMIT lines of early text, then a frequent
# word that only appears after them.
OLD_LIMIT = 3000


def test_words_frequent_only_late_in_the_corpus_are_learned(tmp_path):
    corpus = _late_word_corpus(tmp_path / "c.txt", OLD_LIMIT, 1000)
    first_lines = [line for line in open(corpus).read().split("\n") if line][:OLD_LIMIT]
    assert not any(LATE_WORD in line for line in first_lines)  # a first-N reader never sees it
    full = tmp_path / "full.txt"
    vocab_lib.learn_vocabulary([corpus], str(full), 120, True)
    assert LATE_WORD in vocab_lib.load_vocabulary(str(full))
    # A uniform sample as large as the old limit sees it too.
    sampled = tmp_path / "sampled.txt"
    vocab_lib.learn_vocabulary([corpus], str(sampled), 120, True, sample_lines=OLD_LIMIT)
    assert LATE_WORD in vocab_lib.load_vocabulary(str(sampled))


def test_the_sample_is_uniform_and_the_same_with_any_number_of_workers(tmp_path):
    corpus = _late_word_corpus(tmp_path / "c.txt", 3000, 1000)
    ranges = text_reader.split_ranges(text_reader.expand_patterns([corpus]), 16384)
    one, lines = _count(tmp_path, "one", ranges, ["--direct_num_workers=1"], sample_lines=1000)
    two, lines_two = _count(tmp_path, "two", ranges, ["--direct_num_workers=2"], sample_lines=1000)
    assert (one, lines) == (two, lines_two)
    # Binomial(4000, 1/4): sd ~27 lines; the late quarter of the corpus holds a quarter of the sample.
    assert 850 < lines < 1150
    assert 0.18 < one[LATE_WORD] / 3 / lines < 0.32
    other, _ = _count(tmp_path, "other", ranges, [], sample_lines=1000, seed=1)
    assert other != one  # the seed picks the sample
    everything, all_lines = _count(tmp_path, "all", ranges, [], sample_lines=10**6)
    assert all_lines == 4000 and everything[LATE_WORD] == 3000  # a sample larger than the corpus is all of it
