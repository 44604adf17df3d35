/*
 * Corpus text -> documents grouped by (split, bucket), in C, without the GIL.
 *
 * The input is a segment of a corpus file: whole lines, starting at a line
 * boundary (text_reader.read_segments). A line is blank as in the original
 * reader (empty after str.strip(), Unicode whitespace included); a document is
 * a run of non-blank lines, each stripped of ASCII whitespace as bytes.strip()
 * does. A document belongs to the segment if its first line starts before
 * `limit` and follows a blank line (or the segment start when the line before
 * the segment is blank); text_reader.read_documents is the Python reference.
 *
 * Each document is hashed (document_hash: 128 bits from the text and the seed),
 * which picks its split (eval if the first 64 bits / 2**64 < eval_fraction)
 * and its bucket (the second 64 bits modulo the split's bucket count), and is
 * appended to its bucket's block in the spill format:
 *     hash (16 bytes) | uint32 length | lines joined by '\n'.
 *
 * Why C: in Python this stage held the GIL for ~0.03 s per MB, in the same
 * seconds in which the workers import TensorFlow (also holding the GIL).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "_documents.c reads little-endian words with memcpy."
#endif

/* ---------------------------------------------------------------- hash */

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t fmix64(uint64_t k) { /* MurmurHash3's finaliser: full avalanche */
    k ^= k >> 33;
    k *= 0xFF51AFD7ED558CCDULL;
    k ^= k >> 33;
    k *= 0xC4CEB9FE1A85EC53ULL;
    k ^= k >> 33;
    return k;
}

/* 128 bits of MurmurHash3-style mixing over 8-byte words, seeded. */
static void hash128(const uint8_t *p, size_t n, uint64_t seed, uint64_t out[2]) {
    const uint64_t c1 = 0x87C37B91114253D5ULL, c2 = 0x4CF5AD432745937FULL;
    uint64_t h1 = seed ^ 0x243F6A8885A308D3ULL, h2 = fmix64(seed) ^ 0x13198A2E03707344ULL;
    size_t len = n;
    while (n >= 16) {
        uint64_t k1, k2;
        memcpy(&k1, p, 8);
        memcpy(&k2, p + 8, 8);
        h1 ^= rotl64(k1 * c1, 31) * c2;
        h1 = (rotl64(h1, 27) + h2) * 5 + 0x52DCE729;
        h2 ^= rotl64(k2 * c2, 33) * c1;
        h2 = (rotl64(h2, 31) + h1) * 5 + 0x38495AB5;
        p += 16;
        n -= 16;
    }
    uint8_t tail[16] = {0};
    memcpy(tail, p, n);
    uint64_t k1, k2;
    memcpy(&k1, tail, 8);
    memcpy(&k2, tail + 8, 8);
    h1 ^= rotl64(k1 * c1, 31) * c2;
    h2 ^= rotl64(k2 * c2, 33) * c1;
    h1 ^= len;
    h2 ^= len;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    h2 += h1;
    out[0] = h1;
    out[1] = h2;
}

/* ---------------------------------------------------------------- blank lines */

/* bytes.strip()'s whitespace. */
static inline int ascii_space(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* str.isspace() of a code point (Python's Py_UNICODE_ISSPACE). */
static int unicode_space(uint32_t c) {
    if (c < 128) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Whether every character of the line, decoded as UTF-8 with invalid bytes
 * dropped (decode("utf-8", "ignore")), is whitespace. */
static int only_unicode_space(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        uint32_t c;
        size_t len;
        if (b < 0x80) {
            c = b;
            len = 1;
        } else if (b >= 0xC2 && b <= 0xDF) {
            c = b & 0x1F;
            len = 2;
        } else if (b >= 0xE0 && b <= 0xEF) {
            c = b & 0x0F;
            len = 3;
        } else if (b >= 0xF0 && b <= 0xF4) {
            c = b & 0x07;
            len = 4;
        } else {
            i++; /* not a valid lead byte: dropped */
            continue;
        }
        int ok = i + len <= n;
        for (size_t k = 1; ok && k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) ok = 0;
            else c = (c << 6) | (p[i + k] & 0x3F);
        }
        /* Overlong forms, surrogates and values past U+10FFFF are invalid too. */
        if (ok && ((len == 3 && (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF))) ||
                   (len == 4 && (c < 0x10000 || c > 0x10FFFF))))
            ok = 0;
        if (!ok) {
            i++;
            continue;
        }
        if (!unicode_space(c)) return 0;
        i += len;
    }
    return 1;
}

/* text_reader.is_blank for a line without its '\n'; [*s, *e) is the stripped line. */
static int line_is_blank(const uint8_t *line, size_t n, size_t *s, size_t *e) {
    size_t a = 0, b = n;
    while (a < b && ascii_space(line[a])) a++;
    while (b > a && ascii_space(line[b - 1])) b--;
    *s = a;
    *e = b;
    if (a == b) return 1;
    if (line[a] > 0x20 && line[a] < 0x80) return 0; /* starts with a visible ASCII byte */
    return only_unicode_space(line, n);
}

/* ---------------------------------------------------------------- buckets */

typedef struct {
    uint8_t *data;
    size_t size, capacity;
} Buffer;

static int append(Buffer *b, const void *p, size_t n) {
    if (b->size + n > b->capacity) {
        size_t cap = b->capacity ? b->capacity : 4096;
        while (cap < b->size + n) cap *= 2;
        uint8_t *data = realloc(b->data, cap);
        if (data == NULL) return -1;
        b->data = data;
        b->capacity = cap;
    }
    memcpy(b->data + b->size, p, n);
    b->size += n;
    return 0;
}

typedef struct {
    uint64_t seed;
    double eval_fraction;
    int64_t num_buckets[2]; /* train, eval */
    Buffer *buckets[2];     /* [num_buckets[split]] each, allocated lazily */
    Buffer text;            /* the open document: stripped lines joined by '\n' */
    int64_t num_documents;
} Grouping;

/* Hash, split and bucket of the document in g->text; appends it to its bucket. */
static int close_document(Grouping *g) {
    uint64_t h[2];
    hash128(g->text.data, g->text.size, g->seed, h);
    double u = (double)h[0] * 0x1.0p-64;
    int split = u < g->eval_fraction ? 1 : 0;
    int64_t bucket = (int64_t)(h[1] % (uint64_t)g->num_buckets[split]);
    if (g->buckets[split] == NULL) {
        g->buckets[split] = calloc((size_t)g->num_buckets[split], sizeof(Buffer));
        if (g->buckets[split] == NULL) return -1;
    }
    Buffer *b = &g->buckets[split][bucket];
    uint32_t size = (uint32_t)g->text.size;
    if (append(b, h, 16) < 0 || append(b, &size, 4) < 0 ||
        append(b, g->text.data, g->text.size) < 0)
        return -1;
    g->text.size = 0;
    g->num_documents++;
    return 0;
}

/* Walks the lines of the segment; returns -1 when out of memory, -2 for a
 * document over 4 GB (the spill format's limit). */
static int group_documents(Grouping *g, const uint8_t *data, size_t n, int64_t limit,
                           int prev_blank) {
    int open = 0; /* a document owned by this segment is open */
    size_t pos = 0;
    while (pos < n) {
        const uint8_t *nl = memchr(data + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - data) : n;
        size_t s, e;
        int blank = line_is_blank(data + pos, end - pos, &s, &e);
        if (blank) {
            if (open && close_document(g) < 0) return -1;
            open = 0;
        } else if (open) {
            if (append(&g->text, "\n", 1) < 0 || append(&g->text, data + pos + s, e - s) < 0)
                return -1;
        } else if (prev_blank) {
            if (limit >= 0 && (int64_t)pos >= limit) return 0; /* the next range's */
            if (append(&g->text, data + pos + s, e - s) < 0) return -1;
            open = 1;
        } /* else: the tail of a document owned by the previous segment */
        if (g->text.size > UINT32_MAX) return -2;
        prev_blank = blank;
        pos = end + 1;
    }
    if (open && close_document(g) < 0) return -1;
    return 0;
}

PyDoc_STRVAR(bucket_documents_doc,
"bucket_documents(segment, limit, prev_blank, seed, eval_fraction, num_train_buckets,\n"
"                 num_eval_buckets) -> (blocks, num_documents)\n\n"
"segment: whole lines of a corpus file; limit: documents starting at or after this offset\n"
"are not the segment's (-1: no limit); prev_blank: whether the line before the segment is\n"
"blank. blocks: [(split 0=train/1=eval, bucket, bytes)] sorted, each bytes the bucket's\n"
"documents in the spill format (hash16 | uint32 length | text).");

static PyObject *bucket_documents(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer segment;
    Py_ssize_t limit;
    int prev_blank;
    unsigned long long seed;
    double eval_fraction;
    long long num_train, num_eval;
    if (!PyArg_ParseTuple(args, "y*npKdLL", &segment, &limit, &prev_blank, &seed, &eval_fraction,
                          &num_train, &num_eval))
        return NULL;
    PyObject *result = NULL;
    if (num_train < 1 || num_eval < 1) {
        PyErr_Format(PyExc_ValueError, "bucket counts must be >= 1 (got %lld, %lld).", num_train,
                     num_eval);
        PyBuffer_Release(&segment);
        return NULL;
    }
    Grouping g = {seed, eval_fraction, {num_train, num_eval}, {NULL, NULL}, {NULL, 0, 0}, 0};
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = group_documents(&g, (const uint8_t *)segment.buf, (size_t)segment.len, limit,
                             prev_blank);
    Py_END_ALLOW_THREADS
    if (status == -1) {
        PyErr_NoMemory();
    } else if (status == -2) {
        PyErr_SetString(PyExc_ValueError, "a document is longer than 4 GB.");
    } else {
        PyObject *blocks = PyList_New(0);
        for (int split = 0; blocks && split < 2; split++) {
            if (g.buckets[split] == NULL) continue;
            for (int64_t b = 0; b < g.num_buckets[split]; b++) {
                Buffer *buf = &g.buckets[split][b];
                if (buf->size == 0) continue;
                PyObject *item = Py_BuildValue("(iLy#)", split, (long long)b,
                                               (const char *)buf->data, (Py_ssize_t)buf->size);
                if (item == NULL || PyList_Append(blocks, item) < 0) {
                    Py_XDECREF(item);
                    Py_CLEAR(blocks);
                    break;
                }
                Py_DECREF(item);
            }
        }
        if (blocks) result = Py_BuildValue("(NL)", blocks, (long long)g.num_documents);
    }
    for (int split = 0; split < 2; split++) {
        if (g.buckets[split] == NULL) continue;
        for (int64_t b = 0; b < g.num_buckets[split]; b++) free(g.buckets[split][b].data);
        free(g.buckets[split]);
    }
    free(g.text.data);
    PyBuffer_Release(&segment);
    return result;
}

PyDoc_STRVAR(document_hash_doc,
"document_hash(text, seed) -> bytes: the 16-byte hash of a document's text (its stripped\n"
"lines joined by '\\n'), as bucket_documents computes it.");

static PyObject *document_hash(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer text;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "y*K", &text, &seed)) return NULL;
    uint64_t h[2];
    hash128((const uint8_t *)text.buf, (size_t)text.len, seed, h);
    PyBuffer_Release(&text);
    return PyBytes_FromStringAndSize((const char *)h, 16);
}

/* ---------------------------------------------------------------- joining a bucket */

typedef struct {
    const uint8_t *hash; /* 16 bytes */
    const uint8_t *text;
    uint32_t len;
} Doc;

/* The order of Python's sorted() on (hash, text) pairs of bytes. */
static int compare_docs(const void *a, const void *b) {
    const Doc *x = (const Doc *)a, *y = (const Doc *)b;
    int c = memcmp(x->hash, y->hash, 16);
    if (c) return c;
    uint32_t n = x->len < y->len ? x->len : y->len;
    c = n ? memcmp(x->text, y->text, n) : 0;
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Walks the spill blocks: counts documents and text bytes, or fills `docs` when
 * given. Returns the index of the first malformed block, or -1. */
static Py_ssize_t scan_blocks(const Py_buffer *views, Py_ssize_t num_blocks, Doc *docs,
                              size_t *num_docs, size_t *text_bytes, size_t *bad_offset) {
    size_t n = 0, bytes = 0;
    for (Py_ssize_t i = 0; i < num_blocks; i++) {
        const uint8_t *p = (const uint8_t *)views[i].buf;
        size_t len = (size_t)views[i].len, pos = 0;
        while (pos < len) {
            uint32_t size;
            if (len - pos < 20) {
                *bad_offset = pos;
                return i;
            }
            memcpy(&size, p + pos + 16, 4);
            if (len - pos - 20 < size) {
                *bad_offset = pos;
                return i;
            }
            if (docs) docs[n] = (Doc){p + pos, p + pos + 20, size};
            n++;
            bytes += size;
            pos += 20 + (size_t)size;
        }
    }
    *num_docs = n;
    *text_bytes = bytes;
    return -1;
}

PyDoc_STRVAR(join_documents_doc,
"join_documents(blocks) -> (text, starts, lines)\n\n"
"blocks: spill-format bytes (hash16 | uint32 length | text, repeated), e.g. one bucket's\n"
"blocks from every input range. Sorts all their documents by (hash, text), the order of\n"
"sorted() on (hash, text) pairs, and joins the texts with '\\n', without the GIL.\n"
"text: bytes; starts: int64 [D + 1] (bytes): document i is text[starts[i]:starts[i + 1] - 1]\n"
"(starts is [0] when there is no document);\n"
"lines: int64 [D] (bytes): each document's number of lines.");

static PyObject *join_documents(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *blocks_obj;
    if (!PyArg_ParseTuple(args, "O", &blocks_obj)) return NULL;
    PyObject *seq = PySequence_Fast(blocks_obj, "join_documents: blocks must be a sequence.");
    if (seq == NULL) return NULL;
    Py_ssize_t num_blocks = PySequence_Fast_GET_SIZE(seq), got = 0;
    PyObject *result = NULL, *text = NULL, *starts = NULL, *lines = NULL;
    Doc *docs = NULL;
    Py_buffer *views = PyMem_Calloc(num_blocks ? (size_t)num_blocks : 1, sizeof(Py_buffer));
    if (views == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; got < num_blocks; got++)
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, got), &views[got], PyBUF_SIMPLE) < 0)
            goto done;
    size_t num_docs = 0, text_bytes = 0, bad_offset = 0;
    Py_ssize_t bad;
    Py_BEGIN_ALLOW_THREADS
    bad = scan_blocks(views, num_blocks, NULL, &num_docs, &text_bytes, &bad_offset);
    Py_END_ALLOW_THREADS
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError, "spill block %zd is truncated at byte %zu.", bad,
                     bad_offset);
        goto done;
    }
    size_t joined = num_docs ? text_bytes + num_docs - 1 : 0;
    docs = malloc((num_docs ? num_docs : 1) * sizeof(Doc));
    text = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)joined);
    starts = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(8 * (num_docs + 1)));
    lines = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(8 * num_docs));
    if (docs == NULL || text == NULL || starts == NULL || lines == NULL) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(text);
    int64_t *start = (int64_t *)PyBytes_AS_STRING(starts);
    int64_t *line = (int64_t *)PyBytes_AS_STRING(lines);
    Py_BEGIN_ALLOW_THREADS
    scan_blocks(views, num_blocks, docs, &num_docs, &text_bytes, &bad_offset);
    qsort(docs, num_docs, sizeof(Doc), compare_docs);
    size_t pos = 0;
    for (size_t i = 0; i < num_docs; i++) {
        if (i) out[pos++] = '\n';
        start[i] = (int64_t)pos;
        memcpy(out + pos, docs[i].text, docs[i].len);
        int64_t count = 1;
        for (const uint8_t *q = docs[i].text, *end = q + docs[i].len;
             (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
            count++;
        line[i] = count;
        pos += docs[i].len;
    }
    start[num_docs] = num_docs ? (int64_t)pos + 1 : 0;
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("(OOO)", text, starts, lines);
done:
    for (Py_ssize_t i = 0; i < got; i++) PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    free(docs);
    Py_XDECREF(text);
    Py_XDECREF(starts);
    Py_XDECREF(lines);
    Py_DECREF(seq);
    return result;
}

static PyMethodDef methods[] = {
    {"bucket_documents", bucket_documents, METH_VARARGS, bucket_documents_doc},
    {"document_hash", document_hash, METH_VARARGS, document_hash_doc},
    {"join_documents", join_documents, METH_VARARGS, join_documents_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_documents",
    "Corpus text -> documents grouped by (split, bucket) (see _documents.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__documents(void) { return PyModule_Create(&module); }
