"""Batched tokenisation follows BERT's BasicTokenizer + WordPiece."""
from components.pretraining_data import tokenization


def _tok(vocab, lines, lower=True):
    t = tokenization.BertTokenizer(vocab, lower)
    ids, lengths = t.tokenize(lines)
    out, pos = [], 0
    for n in lengths.tolist():
        out.append([vocab[i] for i in ids[pos:pos + n]])
        pos += n
    return out


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "中", "文", "hello", "world", ",", "!",
         "cafe", "##s", "resume", "ab", "Hello", "café"]


def test_uncased_lowercases_strips_accents_splits_punct_and_cjk():
    assert _tok(VOCAB, [b"Hello,world!", "Cafés résumé".encode(), "中文".encode()]) == [
        ["hello", ",", "world", "!"], ["cafe", "##s", "resume"], ["中", "文"]]


def test_cased_keeps_case_and_accents():
    assert _tok(VOCAB, [b"Hello hello", "café".encode()], lower=False) == [
        ["Hello", "hello"], ["café"]]


def test_control_chars_removed_invalid_utf8_dropped_long_words_unknown():
    lines = [b"a\x01b", "a\u00adb".encode(), b"a\xffb", b"x" * 150, b"", b" \t "]
    assert _tok(VOCAB, lines) == [["ab"], ["ab"], ["ab"], ["[UNK]"], [], []]


def test_tokenize_text_equals_tokenize_of_the_lines():
    """The bucket stage's call (lines joined by newlines, split by a TF op) gives the same
    ids and lengths as tokenising the list of lines, invalid UTF-8 included."""
    from components.pretraining_data import tokenization

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "##s", ".", "a"]
    tok = tokenization.BertTokenizer(vocab, True)
    lines = [b"The cats sat.", b"a \xff\xfe cat", "\u00c9t\u00e9 the cat".encode(), b"\x00\x01", b"sat"]
    ids, lengths = tok.tokenize(lines)
    ids2, lengths2 = tok.tokenize_text(b"\n".join(lines))
    assert ids.tolist() == ids2.tolist() and lengths.tolist() == lengths2.tolist()
    assert lengths.tolist()[3] == 0 and len(lengths2) == len(lines)


def test_one_tokenizer_shared_by_threads_gives_the_sequential_results():
    """Beam's multi-threaded workers share one tokenizer (beam_job._tokenizer_for):
    concurrent calls of its traced graph give what one thread gets, batch by batch."""
    import concurrent.futures

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "##s", ".", "a",
             "dog", "ran"]
    tok = tokenization.BertTokenizer(vocab, True)
    words = ["the", "cat", "sat", "cats", "a", "dog", "ran", "dogs", "zebra", "."]
    texts = [b"\n".join(" ".join(words[(i * j + k) % len(words)] for k in range(1 + j % 7))
                        .encode() for j in range(1, 40 + i)) for i in range(24)]
    expected = [tok.tokenize_text(t) for t in texts]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(tok.tokenize_text, texts))
    for (ids, lengths), (want_ids, want_lengths) in zip(got, expected):
        assert ids.tolist() == want_ids.tolist() and lengths.tolist() == want_lengths.tolist()
    assert sum(len(ids) for ids, _ in expected) > 1000
    assert sum(lengths.tolist().count(0) for _, lengths in expected) == 0
