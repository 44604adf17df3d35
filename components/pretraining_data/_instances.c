/*
 * google-research/bert's create_instances_from_document, over all documents of
 * a bucket and all dupe_factor copies, in C. It returns spans, not tokens:
 * segment A is tokens[a_start:a_end] and B is tokens[b_start:b_end] of the
 * bucket's flat token array, after truncation (records.c builds the instances).
 *
 * The control flow is the original's, line for line: a target length per
 * document (max_seq_length - 3, or with probability short_seq_prob a random
 * length in [2, max]); sentences are gathered into a chunk until it reaches
 * the target or the document ends; A is the chunk's first a_end sentences
 * (a_end random in [1, len - 1]); B is the rest of the chunk, or (with
 * probability 1/2, always for a one-sentence chunk) sentences from a random
 * other document starting at a random sentence until B reaches the target,
 * the unused sentences of the chunk going back; then the longer segment (B on
 * a tie) loses one token at a time from a random end until the pair fits.
 * One difference: the random document is drawn uniformly among the others
 * (the original tries 10 times to draw one that is not the current document).
 *
 * Why C: the same loop in numpy was the largest cost per MB after the record
 * writer, and it held the GIL, so threads could not share the work.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_random.h"

typedef struct {
    int64_t *data; /* [n, 5] */
    size_t n, capacity;
} Spans;

static int spans_push(Spans *s, int64_t a0, int64_t a1, int64_t b0, int64_t b1, int64_t rnd) {
    if (s->n == s->capacity) {
        size_t cap = s->capacity ? 2 * s->capacity : 4096;
        int64_t *data = realloc(s->data, cap * 5 * sizeof(int64_t));
        if (data == NULL) return -1;
        s->data = data;
        s->capacity = cap;
    }
    int64_t *row = s->data + 5 * s->n++;
    row[0] = a0;
    row[1] = a1;
    row[2] = b0;
    row[3] = b1;
    row[4] = rnd;
    return 0;
}

typedef struct {
    const int64_t *bounds;    /* [num_sentences + 1]: sentence s = tokens[bounds[s]:bounds[s+1]] */
    const int64_t *doc_first; /* [num_docs + 1]: document d = sentences [doc_first[d], doc_first[d+1]) */
    int64_t num_docs;
    int64_t max_num_tokens;   /* max_seq_length - 3 */
    double short_seq_prob;
} Corpus;

/* The original's loop for one document; appends its instances to `out`. */
static int instances_from_document(const Corpus *c, int64_t doc, Rng *rng, Spans *out) {
    const int64_t *bounds = c->bounds;
    int64_t first = c->doc_first[doc], end = c->doc_first[doc + 1];
    int64_t target = c->max_num_tokens;
    if (rng_uniform(rng) < c->short_seq_prob)
        target = 2 + (int64_t)rng_below(rng, (uint64_t)(c->max_num_tokens - 1)); /* [2, max] */

    int64_t chunk_start = first; /* the chunk is sentences [chunk_start, i] */
    int64_t i = first;
    while (i < end) {
        int64_t chunk_len = i + 1 - chunk_start;
        int64_t length = bounds[i + 1] - bounds[chunk_start];
        if (i == end - 1 || length >= target) {
            int64_t a_end = 1;
            if (chunk_len >= 2) a_end = 1 + (int64_t)rng_below(rng, (uint64_t)(chunk_len - 1));
            int64_t a0 = bounds[chunk_start], a1 = bounds[chunk_start + a_end];
            int64_t b0, b1, is_random = 0;
            if (chunk_len == 1 || rng_uniform(rng) < 0.5) {
                is_random = 1;
                int64_t target_b = target - (a1 - a0);
                int64_t other = doc;
                if (c->num_docs > 1) {
                    other = (int64_t)rng_below(rng, (uint64_t)(c->num_docs - 1));
                    if (other >= doc) other++;
                }
                int64_t o_first = c->doc_first[other], o_end = c->doc_first[other + 1];
                int64_t start = o_first + (int64_t)rng_below(rng, (uint64_t)(o_end - o_first));
                int64_t stop = start + 1; /* B takes sentences until it reaches target_b */
                while (stop < o_end && bounds[stop] - bounds[start] < target_b) stop++;
                b0 = bounds[start];
                b1 = bounds[stop];
                i -= chunk_len - a_end; /* put the unused sentences back */
            } else {
                b0 = a1;
                b1 = bounds[i + 1];
            }
            /* truncate_seq_pair: the longer one (B on a tie) loses a token, front or back. */
            while ((a1 - a0) + (b1 - b0) > c->max_num_tokens) {
                int front = rng_uniform(rng) < 0.5;
                if ((a1 - a0) > (b1 - b0)) {
                    if (front) a0++; else a1--;
                } else {
                    if (front) b0++; else b1--;
                }
            }
            if (spans_push(out, a0, a1, b0, b1, is_random) < 0) return -1;
            chunk_start = i + 1;
        }
        i++;
    }
    return 0;
}

PyDoc_STRVAR(create_instance_spans_doc,
"create_instance_spans(sentence_bounds, document_starts, max_seq_length, short_seq_prob,\n"
"                      dupe_factor, seed) -> bytes\n\n"
"sentence_bounds: int64 [num_sentences + 1]; document_starts: int64 [num_documents + 1]\n"
"(every sentence and document non-empty). Returns int64 [N, 5] as bytes: a_start, a_end,\n"
"b_start, b_end, is_random_next, by copy, then document, then position in the document.\n"
"Document d of copy k draws from the stream (seed, k * num_documents + d).");

static PyObject *create_instance_spans(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer bounds, starts;
    int max_seq_length, dupe_factor;
    double short_seq_prob;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "y*y*idiK", &bounds, &starts, &max_seq_length, &short_seq_prob,
                          &dupe_factor, &seed))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t num_sentences = bounds.len / 8 - 1, num_docs = starts.len / 8 - 1;
    const int64_t *b = bounds.buf, *d = starts.buf;
    if (bounds.len % 8 || starts.len % 8 || num_sentences < 0 || num_docs < 0) {
        PyErr_SetString(PyExc_ValueError, "sentence_bounds and document_starts must be int64 "
                                          "arrays of at least one element.");
        goto release;
    }
    if (max_seq_length < 5 || dupe_factor < 0) {
        PyErr_Format(PyExc_ValueError, "max_seq_length=%d must be >= 5 and dupe_factor=%d >= 0.",
                     max_seq_length, dupe_factor);
        goto release;
    }
    /* The loop trusts the layout: check it once. */
    if (num_docs > 0 && (d[0] != 0 || d[num_docs] != num_sentences || b[0] != 0)) {
        PyErr_SetString(PyExc_ValueError, "document_starts must run from 0 to the number of "
                                          "sentences, and sentence_bounds start at 0.");
        goto release;
    }
    for (Py_ssize_t k = 0; k < num_sentences; k++)
        if (b[k + 1] <= b[k]) {
            PyErr_Format(PyExc_ValueError, "sentence %zd is empty or reversed.", k);
            goto release;
        }
    for (Py_ssize_t k = 0; k < num_docs; k++)
        if (d[k + 1] <= d[k]) {
            PyErr_Format(PyExc_ValueError, "document %zd has no sentence.", k);
            goto release;
        }

    Corpus c = {b, d, num_docs, max_seq_length - 3, short_seq_prob};
    Spans out = {NULL, 0, 0};
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int copy = 0; copy < dupe_factor && !failed; copy++)
        for (int64_t doc = 0; doc < num_docs && !failed; doc++) {
            Rng rng = rng_for_row(seed, (uint64_t)copy * (uint64_t)num_docs + (uint64_t)doc);
            failed = instances_from_document(&c, doc, &rng, &out) < 0;
        }
    Py_END_ALLOW_THREADS
    if (failed)
        PyErr_NoMemory();
    else
        result = PyBytes_FromStringAndSize(out.data ? (const char *)out.data : "",
                                           (Py_ssize_t)(out.n * 5 * sizeof(int64_t)));
    free(out.data);
release:
    PyBuffer_Release(&bounds);
    PyBuffer_Release(&starts);
    return result;
}

static PyMethodDef methods[] = {
    {"create_instance_spans", create_instance_spans, METH_VARARGS, create_instance_spans_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_instances",
    "BERT's create_instances_from_document over a bucket, as spans (see _instances.c).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__instances(void) { return PyModule_Create(&module); }
