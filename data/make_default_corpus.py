#!/usr/bin/env python3
"""Regenerates the default corpus in data/corpus/ from the Python 3.11 documentation.

Source: the reStructuredText sources of the Python documentation as shipped by
Debian's ``python3.11-doc`` package (``/usr/share/doc/python3.11/html/_sources``),
licensed under the PSF License Agreement (see data/README.md and data/corpus/LICENSE).

    apt-get install python3.11-doc
    python3 data/make_default_corpus.py            # writes data/corpus/python_docs.txt + LICENSE
    python3 data/make_default_corpus.py --check    # regenerates in memory, compares with the files

Output format (the create_pretraining_data input format): one sentence per line,
a blank line between documents. One document is one section of one page (the text
between two headings), keeping sections with at least two sentences.

The conversion is deliberately simple and only uses the standard library:
headings, directives (code blocks, tables of contents, index entries, version notes,
...), literal blocks (``::``), doctest blocks (``>>>``), tables, comments, targets,
footnotes and field lists are dropped; admonitions (note, warning, ...) and the bodies
of object descriptions keep their text; inline markup (roles, literals, emphasis,
links, substitutions) is reduced to its visible text; paragraphs and list items are
split into sentences with a regular expression; sentences shorter than three words
or that look like code are dropped. ``benchmarks/corpus.py`` imports this file to
convert more of the documentation at benchmark time.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap

DOCS_SOURCES = "/usr/share/doc/python3.11/html/_sources"
DEBIAN_PACKAGE = "python3.11-doc"
# The parts of the documentation that are mostly prose (the library and C API
# references are mostly signatures and tables; benchmarks/corpus.py uses them too).
DEFAULT_PARTS = ("tutorial", "howto", "faq")
# Substitutions the Sphinx build defines (|release| is 3.11.2 in the Debian build).
SUBSTITUTIONS = {"release": "3.11.2", "version": "3.11"}
HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "corpus")
OUT_NAME = "python_docs.txt"

# ---------------------------------------------------------------------------
# Inline markup
# ---------------------------------------------------------------------------
_ROLE = re.compile(r":(?:[a-zA-Z][\w.+-]*:)+`((?:[^`\\]|\\.)*)`")
_LITERAL = re.compile(r"``(.+?)``")
_LINK = re.compile(r"`([^`<]*?)\s*<[^`>]*>`__?")
_INTERP = re.compile(r"`([^`]+)`(?:__?)?")
_STRONG = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
_EMPH = re.compile(r"(?<![\w*])\*(\S(?:[^*]*?\S)?)\*(?![\w*])")
_FOOTREF = re.compile(r"\s*\[(?:#[\w-]*|\d+|\*)\]_")
_SUBST = re.compile(r"\|([\w -]+)\|(?:__?)?")
_SPACES = re.compile(r"\s+")
# Section label -> title (":ref:`label`" shows the title of the section it names);
# filled by collect_labels().
LABELS: dict[str, str] = {}
_LABEL = re.compile(r"^\.\. _([^:]+):\s*$")


def collect_labels(texts) -> dict[str, str]:
    """Maps the labels placed right before a section title (".. _label:") to the title."""
    labels = {}
    for text in texts:
        lines = text.splitlines()
        for i, line in enumerate(lines):
            match = _LABEL.match(line.strip())
            if not match:
                continue
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or _LABEL.match(lines[j].strip())):
                j += 1
            if j + 1 < len(lines) and _UNDERLINE.match(lines[j]) and j + 2 < len(lines):
                j += 1  # overlined title
            if j + 1 < len(lines) and _UNDERLINE.match(lines[j + 1]) and lines[j].strip():
                labels[match.group(1).strip().lower()] = lines[j].strip()
    # Titles may hold markup themselves.
    return {k: _SPACES.sub(" ", re.sub(r":\w+:`!?~?([^`]*)`|``([^`]*)``",
                                       lambda m: m.group(1) or m.group(2) or "", v)).strip()
            for k, v in labels.items()}


def _role_text(match: re.Match) -> str:
    full = match.group(0)
    role = full[1:full.index(":`")].split(":")[-1]
    content = match.group(1)
    titled = re.match(r"^(.*?)\s*<([^<>]*)>$", content, re.S)
    if titled and titled.group(1):
        content = titled.group(1)
    elif titled:
        content = titled.group(2)
    if role in ("ref", "doc", "term", "keyword") and not titled:
        if role == "ref":
            content = clean_inline(LABELS.get(content.lower(), content.replace("-", " ").replace("_", " ")))
        elif role == "doc":
            content = content.rstrip("/").split("/")[-1].replace("-", " ")
    content = content.lstrip("!")
    if content.startswith("~"):
        content = content[1:].split(".")[-1]
    if role == "pep":
        content = "PEP " + content.split("#")[0]
    elif role == "rfc":
        content = "RFC " + content.split("#")[0]
    elif role == "abbr":
        content = re.sub(r"\s*\(.*\)$", "", content)
    return content


def clean_inline(text: str) -> str:
    """Reduces reST inline markup to plain text."""
    # Inline literals are kept verbatim (no escapes, no dashes): set them aside first.
    kept: list[str] = []

    def keep(value: str) -> str:
        kept.append(value)
        return f"\x00{len(kept) - 1}\x00"

    text = _LITERAL.sub(lambda m: keep(m.group(1)), text)
    text = _FOOTREF.sub("", text)
    text = _ROLE.sub(lambda m: keep(_role_text(m)), text)
    text = _LINK.sub(r"\1", text)
    text = _INTERP.sub(r"\1", text)
    text = _STRONG.sub(r"\1", text)
    text = _EMPH.sub(r"\1", text)
    text = _SUBST.sub(lambda m: SUBSTITUTIONS.get(m.group(1), m.group(1)), text)
    text = text.replace("\\ ", "")
    text = re.sub(r"\\(.)", r"\1", text)
    # Sphinx's "smart quotes" typography: --- is an em dash, -- an en dash.
    text = re.sub(r"(?<=\s)---(?=\s)", "\u2014", text)
    text = re.sub(r"(?<=\s)--(?=\s)", "\u2013", text)
    text = re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], text)
    return _SPACES.sub(" ", text).strip()


# ---------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------
_BOUNDARY = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Za-z0-9])")
_NO_SPLIT_AFTER = {"e.g.", "i.e.", "cf.", "vs.", "viz.", "mr.", "mrs.", "ms.", "dr.", "prof.",
                   "st.", "no.", "fig.", "sec.", "approx.", "al.", "jr.", "sr.", "ph.d.", "resp.",
                   "vol.", "ch.", "pp.", "p.", "ed.", "eds.", "ver.", "inc.", "ltd.", "co."}


def split_sentences(paragraph: str) -> list[str]:
    """Splits a paragraph of plain text into sentences (a simple regex splitter)."""
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(paragraph):
        end = match.end()
        before = paragraph[start:match.start() + 1].split()
        word = before[-1].lower().lstrip("(\"'[") if before else ""
        if word in _NO_SPLIT_AFTER or re.fullmatch(r"(?:[a-z]\.)+", word):
            continue  # abbreviation or an initial ("A.M. Kuchling")
        nxt = paragraph[end:end + 1]
        if nxt.islower() and (word == "etc." or not re.fullmatch(r"[a-z]{2,}[.!?]", word)):
            continue  # a lower-case start follows only a plain word ("... callable. wrapper runs")
        sentences.append(paragraph[start:end].strip())
        start = end
    sentences.append(paragraph[start:].strip())
    return [s for s in sentences if s]


def keep_sentence(sentence: str) -> bool:
    """Drops fragments, headings-like lines and code-looking lines."""
    words = sentence.split()
    if len(words) < 3:
        return False
    letters = sum(c.isalpha() for c in sentence)
    if letters < 0.6 * len(sentence.replace(" ", "")):
        return False
    if not any(c.islower() for c in sentence):
        return False
    if sentence.startswith((">>>", "...", "$ ", "#", "//", "{", "}")):
        return False
    return True


# ---------------------------------------------------------------------------
# Block structure
# ---------------------------------------------------------------------------
_UNDERLINE = re.compile(r"^([=\-~^\"'*+#<>`:._])\1{2,}\s*$")
_DIRECTIVE = re.compile(r"^\.\.\s+([\w:.-]+)::(.*)$")
_EXPLICIT = re.compile(r"^\.\.(?:\s|$)")
_SIMPLE_TABLE = re.compile(r"^=+(?:\s+=+)+\s*$")
_GRID_TABLE = re.compile(r"^\+[-=+]+\+\s*$")
_BULLET = re.compile(r"^(?:[-*+\u2022]|#\.|\d+[.)]|\(\d+\)|[a-zA-Z][.)])\s+")
_FIELD = re.compile(r"^:[^:`]+:(?:\s|$)")
_OPTION = re.compile(r"^-{1,2}\w")

# Directives whose body is prose (admonitions, object descriptions, topics).
KEEP_BODY = {
    "note", "warning", "tip", "important", "attention", "caution", "hint", "danger",
    "error", "admonition", "topic", "sidebar", "impl-detail", "rubric", "container",
    "function", "method", "class", "attribute", "data", "exception", "decorator",
    "decoratormethod", "classmethod", "staticmethod", "describe", "envvar", "module",
    "c:function", "c:type", "c:member", "c:macro", "c:var", "c:struct", "option",
    "cmdoption", "opcode", "pdbcommand", "abstractmethod", "coroutinefunction",
    "coroutinemethod", "awaitablefunction", "awaitablemethod", "versionadded",
    "versionchanged", "deprecated", "deprecated-removed",
}
# Of those, the ones whose argument is not text (the rest are dropped with it).
_VERSION_DIRECTIVES = {"versionadded", "versionchanged", "deprecated", "deprecated-removed"}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_end(lines: list[str], start: int, min_indent: int) -> int:
    """Index after the block of blank or more-indented-than-min_indent lines from start."""
    i = start
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > min_indent):
        i += 1
    while i > start and not lines[i - 1].strip():
        i -= 1
    return i


def _is_title(lines: list[str], i: int) -> int:
    """Returns the number of lines of a section title starting at i (0 if none)."""
    line = lines[i]
    if not line.strip():
        return 0
    nxt = lines[i + 1] if i + 1 < len(lines) else ""
    if _UNDERLINE.match(line) and i + 2 < len(lines) and lines[i + 1].strip() \
            and _UNDERLINE.match(lines[i + 2]) and lines[i + 2].strip()[0] == line.strip()[0]:
        return 3  # overlined title
    if (not line.startswith(" ") and _UNDERLINE.match(nxt) and not _UNDERLINE.match(line)
            and len(nxt.strip()) >= max(3, len(line.strip()) - 3)):
        return 2
    return 0


def rst_blocks(text: str) -> list[tuple[str, str]]:
    """Parses reST into ("title", text) and ("para", plain text) blocks, dropping the rest."""
    lines = textwrap.dedent(text.expandtabs(8)).splitlines()
    lines = [line.rstrip() for line in lines]
    blocks: list[tuple[str, str]] = []
    i, n = 0, len(lines)
    literal_next = False  # the previous paragraph ended with "::"
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        ind = _indent(line)
        stripped = line.strip()
        if literal_next:
            literal_next = False
            if ind > 0:  # the literal block: an indented block after "para::"
                i = _block_end(lines, i, 0) if ind else i
                continue
            if stripped[0] in "\"'>" or stripped.startswith(">>>"):  # quoted literal block
                while i < n and lines[i].strip():
                    i += 1
                continue
        title = _is_title(lines, i)
        if title:
            heading = lines[i + 1] if title == 3 else line
            blocks.append(("title", clean_inline(heading)))
            i += title
            continue
        if _UNDERLINE.match(line) and len(stripped) >= 4 and not _SIMPLE_TABLE.match(line):
            i += 1  # transition (----)
            continue
        if _EXPLICIT.match(stripped):
            directive = _DIRECTIVE.match(stripped)
            end = _block_end(lines, i + 1, ind)
            if directive and directive.group(1).lower() in KEEP_BODY:
                name = directive.group(1).lower()
                body = lines[i + 1:end]
                # Drop the directive's options (":noindex:", ...) at the top of the body.
                k = 0
                while k < len(body) and body[k].strip() and _FIELD.match(body[k].strip()):
                    k += 1
                arg = directive.group(2).strip()
                inner = "\n".join(body[k:])
                if name in _VERSION_DIRECTIVES:
                    # ".. versionadded:: 3.2  Text..." -- keep the text, not the version.
                    parts = arg.split(None, 1)
                    inner = (parts[1] if len(parts) > 1 else "") + "\n" + textwrap.dedent(inner)
                elif name in ("topic", "sidebar", "admonition", "rubric"):
                    pass  # the argument is a title: dropped
                for kind, value in rst_blocks(textwrap.dedent(inner)):
                    if kind == "para":
                        blocks.append((kind, value))
            i = end
            continue
        if stripped == "::":
            literal_next = True
            i += 1
            continue
        if stripped.startswith(">>>"):
            while i < n and lines[i].strip():
                i += 1
            continue
        if _SIMPLE_TABLE.match(stripped):
            borders = 0
            while i < n:
                if _SIMPLE_TABLE.match(lines[i].strip()):
                    borders += 1
                    if borders >= 2 and (i + 1 >= n or not lines[i + 1].strip()):
                        if borders >= 3 or not (i + 2 < n and lines[i + 2].strip()
                                                and not _SIMPLE_TABLE.match(lines[i + 2].strip())):
                            i += 1
                            break
                i += 1
            continue
        if _GRID_TABLE.match(stripped) or stripped.startswith("|") and stripped.endswith("|"):
            while i < n and lines[i].strip():
                i += 1
            continue
        if _FIELD.match(stripped) or (_OPTION.match(stripped) and "  " in stripped):
            # Field list (":Author: ...") or option list: drop with continuation lines.
            i = _block_end(lines, i + 1, ind)
            continue
        # A paragraph or list item: consecutive non-blank lines, a new list item ending it.
        para = [_BULLET.sub("", stripped, count=1)]
        first_indent = ind
        j = i + 1
        while j < n and lines[j].strip():
            nxt = lines[j].strip()
            if _BULLET.match(nxt) and _indent(lines[j]) <= first_indent:
                break
            if _EXPLICIT.match(nxt) or nxt.startswith(">>>"):
                break
            if j == i + 1 and _indent(lines[j]) > first_indent and not _BULLET.match(stripped):
                para = []  # definition list: the first line was the term; drop it
            para.append(nxt)
            j += 1
        i = j
        joined = " ".join(para)
        if joined.endswith("::"):
            # "text::" shows as "text:", "text ::" and "text.::" drop the marker.
            literal_next = True
            body = joined[:-2]
            joined = body.rstrip() if not body or body[-1] in " .!?:" else body + ":"
        text_ = clean_inline(joined)
        if text_:
            blocks.append(("para", text_))
    return blocks


def rst_to_documents(text: str, min_sentences: int = 2) -> list[list[str]]:
    """Converts one reST page into documents (one per section) of sentences."""
    documents: list[list[str]] = []
    current: list[str] = []
    for kind, value in rst_blocks(text):
        if kind == "title":
            if len(current) >= min_sentences:
                documents.append(current)
            current = []
            continue
        current.extend(s for s in split_sentences(value) if keep_sentence(s))
    if len(current) >= min_sentences:
        documents.append(current)
    return documents


def format_documents(documents: list[list[str]]) -> str:
    """The create_pretraining_data format: a sentence a line, a blank line between documents."""
    return "\n\n".join("\n".join(doc) for doc in documents) + "\n"


# ---------------------------------------------------------------------------
# The default corpus
# ---------------------------------------------------------------------------
def source_files(root: str = DOCS_SOURCES, parts=DEFAULT_PARTS) -> list[str]:
    files = []
    for part in parts:
        folder = os.path.join(root, part)
        for name in sorted(os.listdir(folder)):
            if name.endswith(".rst.txt") and name != "index.rst.txt":
                files.append(os.path.join(folder, name))
    return files


def all_sources(root: str) -> list[str]:
    paths = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        paths.extend(os.path.join(folder, n) for n in sorted(names) if n.endswith(".rst.txt"))
    return paths


def load_labels(root: str = DOCS_SOURCES) -> None:
    texts = []
    for path in all_sources(root):
        with open(path, encoding="utf-8") as f:
            texts.append(f.read())
    LABELS.clear()
    LABELS.update(collect_labels(texts))


def build_default_corpus(root: str = DOCS_SOURCES) -> list[list[str]]:
    load_labels(root)
    documents = []
    for path in source_files(root):
        with open(path, encoding="utf-8") as f:
            documents.extend(rst_to_documents(f.read()))
    return documents


def license_text(root: str = DOCS_SOURCES) -> str:
    """The PSF License Agreement and copyright notice, taken from the docs themselves."""
    with open(os.path.join(root, "copyright.rst.txt"), encoding="utf-8") as f:
        copyright_lines = [line for line in f.read().splitlines()
                           if line.startswith("Copyright ") or line.startswith("reserved")
                           or line.startswith("Python and this")]
    with open(os.path.join(root, "license.rst.txt"), encoding="utf-8") as f:
        license_rst = f.read()
    start = license_rst.index("PSF LICENSE AGREEMENT FOR PYTHON")
    end = license_rst.index("BEOPEN.COM LICENSE AGREEMENT")
    psf = license_rst[start:end].replace(".. parsed-literal::\n", "")
    psf = psf.replace("|release|", SUBSTITUTIONS["release"])
    psf_lines = psf.splitlines()
    body = textwrap.dedent("\n".join(psf_lines[2:])).strip("\n")
    header = psf_lines[0].strip()
    terms_start = license_rst.index("Python software and documentation are licensed")
    terms = license_rst[terms_start:license_rst.index("Some software incorporated")]
    terms = clean_inline(" ".join(terms.split())).replace("Zero-Clause BSD license",
                                                           "Zero-Clause BSD license")
    notice = (
        "The text in this directory (python_docs.txt) is derived from the Python 3.11.2\n"
        "documentation (reStructuredText sources shipped by Debian's python3.11-doc\n"
        "package, /usr/share/doc/python3.11/html/_sources). Summary of the changes:\n"
        "markup, headings, code examples, tables and other non-prose content were\n"
        "removed, and the remaining text was split into one sentence per line, one\n"
        "document per section; see data/README.md and data/make_default_corpus.py.\n"
    )
    out = [notice, "\n".join(copyright_lines), "", terms, "", header, "-" * len(header), "", body, ""]
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", default=DOCS_SOURCES, help="the _sources folder of the Python docs")
    parser.add_argument("--out-dir", default=OUT_DIR)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.docs):
        print(f"{args.docs} not found: apt-get install {DEBIAN_PACKAGE}", file=sys.stderr)
        return 2
    documents = build_default_corpus(args.docs)
    outputs = {OUT_NAME: format_documents(documents), "LICENSE": license_text(args.docs)}
    status = 0
    for name, content in outputs.items():
        path = os.path.join(args.out_dir, name)
        if args.check:
            try:
                with open(path, encoding="utf-8") as f:
                    same = f.read() == content
            except FileNotFoundError:
                same = False
            print(f"{path}: {'up to date' if same else 'DIFFERS'}")
            status |= 0 if same else 1
            continue
        os.makedirs(args.out_dir, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(content)
        os.replace(tmp, path)
    corpus = outputs[OUT_NAME]
    n_sent = sum(len(d) for d in documents)
    print(f"{len(corpus.encode('utf-8'))} bytes, {len(documents)} documents, {n_sent} sentences, "
          f"{corpus.count(chr(10))} lines")
    return status


if __name__ == "__main__":
    sys.exit(main())
