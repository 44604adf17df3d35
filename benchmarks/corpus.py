#!/usr/bin/env python3
"""Builds a larger real-text corpus for benchmarks from text already on the machine.

    python benchmarks/corpus.py --output /tmp/bench_corpus.txt --min-mb 20

The output has the create_pretraining_data input format, like data/corpus/: one
sentence per line, a blank line between documents, every document at least two
sentences. Standard library only; deterministic for a given machine (every listing
is sorted, nothing is sampled), written to a temporary file and renamed.

Sources, in this order, until ``min_bytes`` is reached:

1. the Python documentation's reStructuredText sources (``/usr/share/doc/python3*/
   html/_sources``, Debian's python3.X-doc; one document a section), converted by
   data/make_default_corpus.py -- or, if they are not installed, the shipped
   default corpus data/corpus/*.txt (which is a part of them);
2. the GNU Info manuals in ``/usr/share/info`` (one document a node);
3. the English manual pages in ``/usr/share/man/man[1-8]`` (one document a
   section, NAME/SYNOPSIS/SEE ALSO/... and examples dropped);
4. the licence texts in ``/usr/share/common-licenses`` (one document a file);
5. the docstrings of the Python standard library, then of the installed packages
   (this interpreter's site-packages and the project's .venv), one document a
   docstring section.

Exact duplicate documents are written once. Only if all of that is still smaller
than ``min_bytes`` are the documents written again (a note says so).
"""
from __future__ import annotations

import argparse
import ast
import glob
import gzip
import hashlib
import importlib.util
import os
import re
import sys
import sysconfig
import time
import warnings

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONVERTER = os.path.join(REPO_ROOT, "data", "make_default_corpus.py")


def _load_converter():
    spec = importlib.util.spec_from_file_location("make_default_corpus", _CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mdc = _load_converter()
split_sentences = mdc.split_sentences
keep_sentence = mdc.keep_sentence
MIN_SENTENCES = 2


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")


def _sentences(paragraph: str) -> list[str]:
    paragraph = " ".join(_CONTROL.sub("", paragraph).split())
    return [s for s in split_sentences(paragraph)
            if keep_sentence(s) and not s.endswith((");", "{", "}", ";"))]


def _read_text(path: str) -> str:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# ---------------------------------------------------------------------------
# 1. Python documentation (reST) or the shipped default corpus
# ---------------------------------------------------------------------------
def python_docs_sources() -> list[str]:
    roots = {}
    for path in sorted(glob.glob("/usr/share/doc/python3*/html/_sources")):
        if os.path.isdir(path):
            roots.setdefault(os.path.realpath(path), path)  # python3.11-dev etc. are links
    return sorted(roots)


def python_docs_documents(root: str):
    mdc.load_labels(root)
    for path in mdc.all_sources(root):
        with open(path, encoding="utf-8") as f:
            yield from mdc.rst_to_documents(f.read(), MIN_SENTENCES)


def default_corpus_documents():
    for path in sorted(glob.glob(os.path.join(REPO_ROOT, "data", "corpus", "*.txt"))):
        with open(path, encoding="utf-8") as f:
            for block in f.read().split("\n\n"):
                lines = [line for line in block.splitlines() if line.strip()]
                if len(lines) >= MIN_SENTENCES:
                    yield lines


# ---------------------------------------------------------------------------
# 2. GNU Info manuals
# ---------------------------------------------------------------------------
_INFO_UNDERLINE = re.compile(r"^([*=\-.])\1{2,}\s*$")
_INFO_TAG = re.compile(r"^(?:‘[^’]*’|'[^']*'|`[^']*'|-\S*)(?:,?\s+(?:‘[^’]*’|-\S*))*\s*$")


_INFO_IMAGE = re.compile(r"\x00\x08\[.*?\x00\x08\]", re.S)
_INFO_XREF = re.compile(r"\*[Nn]ote\s+([^:]+?)::|\*[Nn]ote\s+([^:]+?):\s*(?:\([^)]*\))?[^.,:]*([.,])")


def _info_xref(m: re.Match) -> str:
    return m.group(1) if m.group(1) is not None else m.group(2) + m.group(3)


def info_documents(path: str):
    text = _INFO_IMAGE.sub("", _read_text(path))
    text = _INFO_XREF.sub(_info_xref, text)
    for node in text.split("\x1f"):
        lines = node.strip("\n").splitlines()
        if not lines or not lines[0].startswith("File:"):
            continue  # the indirect and tag tables
        sentences: list[str] = []
        para: list[str] = []

        def flush():
            if para:
                sentences.extend(_sentences(" ".join(para)))
                para.clear()

        i = 1
        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            if stripped.startswith("* Menu:"):
                break  # the menu runs to the end of the node
            if i + 1 < len(lines) and stripped and _INFO_UNDERLINE.match(lines[i + 1]):
                flush()  # a heading
                i += 2
                continue
            if not stripped or stripped.startswith(("• ", "* ", "-- ")) or _INFO_TAG.match(stripped):
                flush()
                if stripped.startswith(("• ", "* ")):
                    para.append(stripped[2:])
                i += 1
                continue
            para.append(stripped)
            i += 1
        flush()
        if len(sentences) >= MIN_SENTENCES:
            yield sentences


def info_files(skip_python: bool) -> list[str]:
    paths = []
    for path in sorted(glob.glob("/usr/share/info/*")):
        name = os.path.basename(path)
        if not re.search(r"\.info(-\d+)?(\.gz)?$", name):
            continue
        if skip_python and name.startswith("python"):
            continue  # the same text as the reST sources
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------
# 3. Manual pages (man(7) macros; mdoc(7) pages are skipped)
# ---------------------------------------------------------------------------
_SKIP_SECTIONS = {"NAME", "SYNOPSIS", "SYNTAX", "PROTOTYPES", "STRUCTURES", "OVERVIEW OF SYNTAX", "SEE ALSO", "AUTHOR", "AUTHORS", "COPYRIGHT", "REPORTING BUGS",
                  "EXAMPLE", "EXAMPLES", "FILES", "BUGS", "COLOPHON", "LICENSE", "COPYING",
                  "VERSIONS", "STANDARDS", "CONFORMING TO", "ATTRIBUTES", "RETURN VALUE",
                  "EXIT STATUS", "ERRORS", "SOURCE", "LIBRARY", "AVAILABILITY", "TRADEMARKS"}
_FONT_MACROS = {"B", "I", "SM", "SB", "BR", "RB", "IR", "RI", "BI", "IB", "UR", "MT", "OP"}
_BREAK_MACROS = {"PP", "P", "LP", "SS", "sp", "br", "IP", "TP", "TQ", "RS", "RE", "HP", "in", "ti",
                 "ne", "bp", "Pp", "ns"}
_SKIP_BLOCKS = {"nf": "fi", "EX": "EE", "TS": "TE", "EQ": "EN", "de": "..", "ig": "..",
                "PS": "PE", "Vb": "Ve", "cs": "ce"}
_GROFF_NAMED = {"em": "\u2014", "en": "\u2013", "aq": "'", "lq": '"', "rq": '"', "oq": "'",
                "cq": "'", "dq": '"', "co": "\u00a9", "rg": "\u00ae", "tm": "\u2122", "hy": "-",
                "mi": "-", "pl": "+", "mu": "\u00d7", "de": "\u00b0", "bu": "", "ti": "~",
                "ha": "^", "rs": "\\", "sl": "/", "ga": "`", "aa": "'", "dg": "\u2020",
                "Fo": "\u00ab", "Fc": "\u00bb"}
_GROFF_ESCAPE = re.compile(
    r"\\(?:f(?:\[[^\]]*\]|\(..|.)|s[+-]?(?:\d+|\[[^\]]*\]|\(\d\d)|\((..)|\[([^\]]*)\]"
    r"|\*(?:\[[^\]]*\]|\(..|.)|n(?:\[[^\]]*\]|\(..|.)|[hvwlLxkb]'[^']*'|(.))", re.S)


def _groff_inline(text: str) -> str:
    def repl(m: re.Match) -> str:
        named = m.group(1) or m.group(2)
        if named is not None:
            return _GROFF_NAMED.get(named, "")
        char = m.group(3)
        if char is None:
            return ""  # fonts, sizes, strings, registers, motions
        if char in "-e\\":
            return "-" if char == "-" else "\\"
        if char in " 0~":
            return " "
        return ""  # \& \| \^ \% \c \: ...

    return _GROFF_ESCAPE.sub(repl, text)


def _macro_args(rest: str) -> list[str]:
    args, cur, quoted, i = [], "", False, 0
    while i < len(rest):
        c = rest[i]
        if c == '"':
            if quoted and rest[i + 1:i + 2] == '"':
                cur += '"'
                i += 1
            else:
                quoted = not quoted
        elif c in " \t" and not quoted:
            if cur:
                args.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    if cur:
        args.append(cur)
    return args


def man_documents(path: str):
    text = _read_text(path)
    if re.search(r"^\.(?:Dd|Sh|so)\b", text, re.M):
        return  # mdoc(7) page or a link to another page
    sentences: list[str] = []
    para: list[str] = []
    skip_section = True
    end_block = None
    drop_next_line = title_next = False

    def flush():
        if para:
            if not skip_section:
                sentences.extend(_sentences(_groff_inline(" ".join(para))))
            para.clear()

    for raw in text.splitlines():
        if end_block is not None:
            if raw.startswith((".", "'")) and raw[1:].strip().split(" ")[0] == end_block:
                end_block = None
            continue
        if raw.startswith(("'\\\"", ".\\\"", '\\"', ".\\#")) or raw == ".":
            continue
        if raw.startswith((".", "'")):
            parts = raw[1:].strip().split(None, 1)
            if not parts:
                continue
            name, rest = parts[0], (parts[1] if len(parts) > 1 else "")
            if name in _SKIP_BLOCKS:
                flush()
                end_block = _SKIP_BLOCKS[name]
                continue
            if name in ("SH", "SS"):
                flush()
                if name == "SH":
                    if len(sentences) >= MIN_SENTENCES:
                        yield sentences
                    sentences = []
                    title = _groff_inline(" ".join(_macro_args(rest))).strip().upper()
                    skip_section = title in _SKIP_SECTIONS
                    title_next = not title  # ".SH" alone: the title is the next line
                drop_next_line = not rest
                continue
            if name in _BREAK_MACROS:
                flush()
                drop_next_line = name in ("TP", "TQ")  # the next line is the item's tag
                continue
            if name in _FONT_MACROS:
                if drop_next_line:
                    drop_next_line = False
                    continue
                args = _macro_args(rest)
                joiner = "" if len(name) == 2 and name not in ("SM", "SB", "UR", "MT", "OP") else " "
                para.append(joiner.join(args))
                continue
            continue  # any other request: no text
        if drop_next_line:
            drop_next_line = False
            if title_next:
                title_next = False
                skip_section = _groff_inline(raw).strip().upper() in _SKIP_SECTIONS
            continue
        if not raw.strip():
            flush()
            continue
        para.append(raw.strip())
    flush()
    if len(sentences) >= MIN_SENTENCES:
        yield sentences


MAN_PAGES_PER_FAMILY = 25


def man_files() -> list[str]:
    """The pages of sections 1-8, at most MAN_PAGES_PER_FAMILY a name prefix.

    The cap keeps families of generated, near-identical pages (thousands of
    ``gcloud_*`` pages, ``git-*``, ``llvm-*``, ...) from filling the corpus.
    """
    paths, families = [], {}
    for section in range(1, 9):
        for path in sorted(glob.glob(f"/usr/share/man/man{section}/*")):
            if os.path.isfile(path) and not os.path.islink(path):
                family = re.split(r"[_.:-]", os.path.basename(path), maxsplit=1)[0].lower()
                families[family] = families.get(family, 0) + 1
                if families[family] <= MAN_PAGES_PER_FAMILY:
                    paths.append(path)
    return paths


# ---------------------------------------------------------------------------
# 4. Licence texts
# ---------------------------------------------------------------------------
def plain_text_documents(path: str):
    text = _read_text(path)
    sentences = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines or sum(line.startswith("    ") for line in lines) > len(lines) / 2:
            continue  # an indented (code or table) block
        sentences.extend(_sentences(" ".join(lines)))
    if len(sentences) >= MIN_SENTENCES:
        yield sentences


# ---------------------------------------------------------------------------
# 5. Docstrings
# ---------------------------------------------------------------------------
_FENCE = re.compile(r"^\s*(```|~~~)")


def _strip_markdown_fences(text: str) -> str:
    out, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return "\n".join(out)


_DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _definitions(tree: ast.Module):
    """The module and its classes and functions, in source order (statements only: fast)."""
    yield tree
    stack = [iter(tree.body)]
    while stack:
        node = next(stack[-1], None)
        if node is None:
            stack.pop()
            continue
        if isinstance(node, _DEFINITIONS):
            yield node
        for field in ("finalbody", "orelse", "handlers", "body"):  # pushed last, read first
            children = getattr(node, field, None)
            if isinstance(children, list) and children and isinstance(children[0], ast.AST):
                stack.append(iter(children))


def docstring_documents(path: str):
    try:
        with open(path, "rb") as f:
            source = f.read()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError, UnicodeDecodeError, OSError, RecursionError):
        return
    for node in _definitions(tree):
        doc = ast.get_docstring(node, clean=True)
        if not doc or len(doc) < 80:
            continue
        try:
            yield from mdc.rst_to_documents(_strip_markdown_fences(doc), MIN_SENTENCES)
        except (IndexError, ValueError, RecursionError):
            continue


def python_files() -> list[str]:
    roots = []
    paths = sysconfig.get_paths()
    for key in ("stdlib", "purelib", "platlib"):
        root = paths.get(key)
        if root and os.path.isdir(root) and root not in roots:
            roots.append(root)
    for root in sorted(glob.glob(os.path.join(REPO_ROOT, ".venv", "lib", "python3*", "site-packages"))):
        if root not in roots:
            roots.append(root)
    files, seen = [], set()
    for root in roots:
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in ("test", "tests", "__pycache__")
                             and not (folder == root and d == "site-packages"))
            for name in sorted(names):
                if name.endswith(".py"):
                    real = os.path.realpath(os.path.join(folder, name))
                    if real not in seen:
                        seen.add(real)
                        files.append(os.path.join(folder, name))
    return files


# ---------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------
def _sources():
    """(name, iterator of documents) in order of preference."""
    docs_roots = python_docs_sources()
    if docs_roots:
        for root in docs_roots:
            yield f"python docs ({root})", python_docs_documents(root)
    else:
        yield "default corpus (data/corpus)", default_corpus_documents()
    yield "GNU Info manuals (/usr/share/info)", (
        d for p in info_files(skip_python=bool(docs_roots)) for d in info_documents(p))
    yield "manual pages (/usr/share/man)", (d for p in man_files() for d in man_documents(p))
    yield "licence texts (/usr/share/common-licenses)", (
        d for p in sorted(glob.glob("/usr/share/common-licenses/*"))
        if os.path.isfile(p) for d in plain_text_documents(p))
    yield "Python docstrings (stdlib, site-packages)", _docstrings_in_parallel(python_files())


def _file_docstrings(path: str) -> list[list[str]]:
    return list(docstring_documents(path))


def _docstrings_in_parallel(paths: list[str]):
    """docstring_documents over paths, in order, parsed by a pool of forked workers."""
    import multiprocessing
    import threading

    # Forking is only safe with one thread (a caller may have TensorFlow/Beam threads running).
    if ((os.cpu_count() or 1) < 2 or threading.active_count() > 1
            or "fork" not in multiprocessing.get_all_start_methods()):
        for path in paths:
            yield from docstring_documents(path)
        return
    pool = multiprocessing.get_context("fork").Pool(min(4, os.cpu_count() or 1))
    try:
        for documents in pool.imap(_file_docstrings, paths, chunksize=8):
            yield from documents
    finally:
        pool.terminate()
        pool.join()


def build_benchmark_corpus(path: str, min_bytes: int = 20 * 2**20, verbose: bool = False) -> str:
    """Writes at least min_bytes of real text in the pretraining input format to path.

    Returns path. Deterministic for a given machine; written to a temporary file
    in the same folder and renamed into place.
    """
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    seen: set[bytes] = set()
    kept: list[bytes] = []  # the written documents, for the last-resort repetition
    total = n_docs = 0
    per_source: list[tuple[str, int, int]] = []
    try:
        with open(tmp, "wb") as out:
            for name, documents in _sources():
                start_bytes, start_docs, started = total, n_docs, time.perf_counter()
                for sentences in documents:
                    data = ("\n".join(sentences) + "\n").encode("utf-8")
                    digest = hashlib.sha1(data).digest()
                    if digest in seen:
                        continue
                    seen.add(digest)
                    if n_docs:
                        out.write(b"\n")
                        total += 1
                    out.write(data)
                    kept.append(data)
                    total += len(data)
                    n_docs += 1
                    if total >= min_bytes:
                        break
                if hasattr(documents, "close"):
                    documents.close()  # stops the docstring workers early
                per_source.append((name, total - start_bytes, n_docs - start_docs))
                if verbose:
                    print(f"  {name}: {total - start_bytes} bytes, {n_docs - start_docs} documents, "
                          f"{time.perf_counter() - started:.1f}s", file=sys.stderr)
                if total >= min_bytes:
                    break
            if total < min_bytes:
                if not kept:
                    raise RuntimeError("no text found on this machine to build a corpus from")
                unique = total
                rounds = 0
                while total < min_bytes:
                    rounds += 1
                    for data in kept:
                        out.write(b"\n")
                        out.write(data)
                        total += 1 + len(data)
                        n_docs += 1
                        if total >= min_bytes:
                            break
                print(f"note: only {unique} bytes of distinct text were found; the documents were "
                      f"repeated ({rounds} more pass(es)) to reach {min_bytes} bytes", file=sys.stderr)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    build_benchmark_corpus.last_stats = {"bytes": total, "documents": n_docs, "sources": per_source}
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build a real-text benchmark corpus.")
    parser.add_argument("--output", required=True, help="the corpus file to write")
    parser.add_argument("--min-mb", type=float, default=20.0, help="minimum size in MiB (default 20)")
    parser.add_argument("--verbose", action="store_true", help="print the bytes taken from each source")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = build_benchmark_corpus(args.output, int(args.min_mb * 2**20), verbose=args.verbose)
    stats = build_benchmark_corpus.last_stats
    print(f"{path}: {stats['bytes']} bytes ({stats['bytes'] / 2**20:.1f} MiB), "
          f"{stats['documents']} documents, in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
