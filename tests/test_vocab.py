"""Vocabulary learning and loading (vocab.py)."""
import pytest

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
