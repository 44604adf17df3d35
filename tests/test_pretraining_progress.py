"""Progress lines of the data jobs (progress.py): text read of the total, items, ETA, logged
every --progress_seconds by `bertpipe prepare-data` and `bertpipe vocab` (and so in the
pipeline's log, where the same functions run)."""
import re

from components.pretraining_data import beam_job, progress
from pipeline import cli

from test_pretraining_fixtures import corpus_text, write_vocab

LINE = re.compile(r"(prepare-data|bertpipe vocab): read ([\d.,]+) of ([\d.,]+) MB, ([\d,]+) "
                  r"(instances written|lines counted), (\d+)% done, (\d+:\d\d:\d\d) elapsed, ETA (\S+)")


def test_line_gives_the_share_done_and_an_eta_from_the_pace_so_far():
    p = progress.Progress("bertpipe vocab", 4_000_000, {"read": 1.0}, "lines_counted")
    assert p.line(now=p.started + 5).endswith("0% done, 0:00:05 elapsed, ETA unknown")
    p.add("read", 1_000_000, lines_counted=7)
    assert p.line(now=p.started + 60) == ("bertpipe vocab: read 1.0 of 4.0 MB, 7 lines counted, 25% done, "
                                          "0:01:00 elapsed, ETA 0:03:00")


def test_data_job_progress_weighs_its_stages_and_counts_records_by_instances():
    p = beam_job.DataJobProgress(1000)
    p.add("read", 1000)
    p.add("instances", 500, instances_made=200)
    p.add(instances_written=100)
    # read 1.0 x 0.1 + instances 0.5 x 0.5 + records (0.5 x 100/200) x 0.4
    assert abs(p.fraction_done() - (0.1 + 0.25 + 0.1)) < 1e-9
    progress.add("not-registered", "read", 5)  # a worker in another process: no effect, no error


def _lines(err):
    return [m for m in (LINE.search(line) for line in err.splitlines()) if m]


def test_prepare_data_and_vocab_log_progress_at_the_interval(tmp_path, capfd):
    corpus = tmp_path / "c.txt"
    corpus.write_text(corpus_text(60, seed=3))
    vocab = write_vocab(tmp_path / "v.txt")
    assert cli.main(["prepare-data", f"--input_file={corpus}", f"--vocab_file={vocab}",
                     f"--output_dir={tmp_path / 'out'}", "--max_seq_length=32", "--max_predictions_per_seq=5",
                     "--dupe_factor=2", "--direct_num_workers=2", "--progress_seconds=0.02"]) == 0
    out, err = capfd.readouterr()
    lines = _lines(err)
    assert len(lines) >= 2, err  # at least one at the interval, and the last one
    made = re.search(r"Wrote (\d+) train and (\d+) eval instances", out)
    last = lines[-1]
    assert last.group(1) == "prepare-data" and float(last.group(3)) == round(corpus.stat().st_size / 1e6, 1)
    assert int(last.group(4).replace(",", "")) == int(made.group(1)) + int(made.group(2))

    assert cli.main(["vocab", f"--input_file={corpus}", f"--vocab_file={tmp_path / 'vocab.txt'}",
                     "--vocab_size=100", "--progress_seconds=0.02"]) == 0
    err = capfd.readouterr().err
    # The learner, after the count: a line per frequency threshold it tries, the last "done".
    steps = re.findall(r"bertpipe vocab: learner step (\d+): frequency threshold [\d,]+ gives ([\d,]+) tokens, "
                       r"[\d:]+ elapsed, (ETA at most [\d:]+|done)", err)
    assert [int(s[0]) for s in steps] == list(range(1, len(steps) + 1)) and steps[-1][2] == "done", err
    assert int(steps[-1][1]) == len((tmp_path / "vocab.txt").read_text().split("\n")) - 1
    lines = _lines(err)
    assert len(lines) >= 2
    non_blank = sum(1 for line in corpus.read_text().split("\n") if line.strip())
    assert lines[-1].group(1) == "bertpipe vocab" and int(lines[-1].group(4).replace(",", "")) == non_blank
    assert lines[-1].group(6) == "100"
