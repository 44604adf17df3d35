"""The eval split is checked where it is made: a document split that leaves eval without an
instance (or under --min_eval_instances) fails the data job with the document counts and the
fix, before anything is published, so nothing trains on it (beam_job.check_eval_split)."""
import os

import pytest

from components.pretraining_data import beam_job
from components.pretraining_data.options import PretrainingDataOptions

from test_pretraining_fixtures import corpus_text, write_vocab

IN_PROCESS = ["--direct_num_workers=1"]


def _options(eval_fraction):
    return PretrainingDataOptions(max_seq_length=32, max_predictions_per_seq=5, dupe_factor=1, num_shards=1,
                                  eval_fraction=eval_fraction)


def test_a_split_that_leaves_eval_empty_fails_with_the_counts_and_the_fix(tmp_path):
    corpus = tmp_path / "few_documents.txt"
    corpus.write_text(corpus_text(4, seed=5))
    vocab = write_vocab(tmp_path / "v.txt")
    out = tmp_path / "records"
    with pytest.raises(ValueError) as error:
        beam_job.run_prepare_data([str(corpus)], vocab, str(out), _options(0.01), IN_PROCESS)
    message = str(error.value)
    assert "would have no instance: 0 of 4 document(s) went to eval" in message
    assert "--eval_fraction 0.01" in message and "Give more documents" in message
    assert sorted(os.listdir(tmp_path)) == ["few_documents.txt", "v.txt"]  # nothing published, no staging left


def test_under_min_eval_instances_fails_and_enough_passes(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(corpus_text(40, seed=5))
    vocab = write_vocab(tmp_path / "v.txt")
    stats = beam_job.run_prepare_data([str(corpus)], vocab, str(tmp_path / "ok"), _options(0.3), IN_PROCESS)
    eval_instances = stats["num_eval_instances"]
    assert eval_instances > 0 and stats["num_eval_documents"] > 0
    # The same split, asked for one instance more than it holds: refused, with the numbers.
    with pytest.raises(ValueError, match=rf"{eval_instances} instance\(s\), under the {eval_instances + 1} asked "
                                         rf"for: {stats['num_eval_documents']} of 40 document\(s\)"):
        beam_job.run_prepare_data([str(corpus)], vocab, str(tmp_path / "short"), _options(0.3), IN_PROCESS,
                                  min_eval_instances=eval_instances + 1)
    assert not (tmp_path / "short").exists()
    # Exactly enough passes.
    beam_job.run_prepare_data([str(corpus)], vocab, str(tmp_path / "exact"), _options(0.3), IN_PROCESS,
                              min_eval_instances=eval_instances)


def test_no_eval_split_asked_for_is_not_checked():
    stats = {"num_eval_instances": 0, "num_documents": 3, "num_eval_documents": 0, "num_train_documents": 3,
             "num_train_instances": 9}
    beam_job.check_eval_split(stats, 0.0, 1, "--input_file", ["c.txt"])  # --output_file: no eval wanted
    # 3 instances a document: 2 x 1 eval document wanted, 20 documents at 0.1, or 2/3 of 3 (capped at 0.5).
    with pytest.raises(ValueError, match=r"about 20 at this fraction\) or a larger --eval_fraction \(about 0\.5 for 3"):
        beam_job.check_eval_split(stats, 0.1, 1, "--input_file", ["c.txt"])
