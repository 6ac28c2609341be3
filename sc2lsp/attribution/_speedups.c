/* Optional compiled kernels of the attribution query path.
 *
 * Each function gives exactly the answer of the Python code it stands for (the callers in
 * rawsearch.py and normalize.py fall back to that code when this module is not built;
 * tests/attribution/test_attribution_speedups.py compares the two):
 *
 *   normalize_ws(text)   normalize.normalize after NFC: whitespace runs collapsed
 *   scan(...)            the occurrence loop of rawsearch.scan_raw
 *
 * Whitespace is str.split's (Py_UNICODE_ISSPACE), line breaks str.splitlines'
 * (Py_UNICODE_ISLINEBREAK); ASCII text takes table lookups and memmem. No I/O, no allocation per
 * occurrence.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <string.h>

/* The API version rawsearch.py and normalize.py expect (a stale build is not used). */
#define SPEEDUPS_API 1

static unsigned char WS[128];    /* 1: whitespace (ASCII) */
static unsigned char BREAK[128]; /* 1: line break (ASCII) */

static void init_tables(void) {
    for (Py_UCS4 c = 0; c < 128; c++) {
        WS[c] = Py_UNICODE_ISSPACE(c) != 0;
        BREAK[c] = Py_UNICODE_ISLINEBREAK(c) != 0;
    }
}

static inline int is_ws(Py_UCS4 c) { return c < 128 ? WS[c] : Py_UNICODE_ISSPACE(c); }
static inline int is_break(Py_UCS4 c) { return c < 128 ? BREAK[c] : Py_UNICODE_ISLINEBREAK(c); }

/* A str's characters: kind, data, length. */
typedef struct {
    int kind;
    const void *data;
    Py_ssize_t len;
} Text;

static int text_of(PyObject *s, Text *t, const char *what) {
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str", what);
        return -1;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(s) < 0) return -1;
#endif
    t->kind = PyUnicode_KIND(s);
    t->data = PyUnicode_DATA(s);
    t->len = PyUnicode_GET_LENGTH(s);
    return 0;
}

static inline Py_UCS4 at(const Text *t, Py_ssize_t i) {
    return t->kind == PyUnicode_1BYTE_KIND ? ((const Py_UCS1 *)t->data)[i] : PyUnicode_READ(t->kind, t->data, i);
}

/* normalize_ws(text) -> str: every whitespace run holding a line break becomes "\n", any other
 * run " ", the ends dropped (normalize.normalize of text already in NFC). */
static PyObject *normalize_ws(PyObject *self, PyObject *arg) {
    Text t;
    if (text_of(arg, &t, "text") < 0) return NULL;
    Py_ssize_t out = 0;
    void *buf = NULL;
    PyObject *res = NULL;
    /* the length first, then the characters */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            if (PyUnicode_IS_ASCII(arg)) {
                res = PyUnicode_New(out, 127);
                if (res == NULL) return NULL;
                buf = PyUnicode_DATA(res);
            } else {
                buf = PyMem_Malloc(out * t.kind + 1);
                if (buf == NULL) return PyErr_NoMemory();
            }
        }
        Py_ssize_t k = 0, i = 0;
        while (i < t.len && is_ws(at(&t, i))) i++; /* leading whitespace */
        while (i < t.len) {
            Py_UCS4 c = at(&t, i);
            if (!is_ws(c)) {
                if (buf) PyUnicode_WRITE(t.kind, buf, k, c);
                k++;
                i++;
                continue;
            }
            int brk = 0;
            while (i < t.len && is_ws(c = at(&t, i))) {
                brk |= is_break(c);
                i++;
            }
            if (i < t.len) { /* not the trailing run */
                if (buf) PyUnicode_WRITE(t.kind, buf, k, brk ? '\n' : ' ');
                k++;
            }
        }
        out = k;
    }
    if (res != NULL) return res;
    res = PyUnicode_FromKindAndData(t.kind, buf, out); /* (finds the largest character left) */
    PyMem_Free(buf);
    return res;
}

/* How many non-blank characters of raw from e on agree with the start of q (at most nq). */
static Py_ssize_t agree_after(const Text *raw, Py_ssize_t e, const Text *q, Py_ssize_t nq) {
    Py_ssize_t j = 0;
    for (Py_ssize_t i = e; i < raw->len && j < nq; i++) {
        Py_UCS4 c = at(raw, i);
        if (is_ws(c)) continue;
        if (c != at(q, j)) break;
        j++;
    }
    return j;
}

/* How many non-blank characters of raw before p agree with the end of q (at most nq of them). */
static Py_ssize_t agree_before(const Text *raw, Py_ssize_t p, const Text *q, Py_ssize_t nq) {
    Py_ssize_t j = 0;
    for (Py_ssize_t i = p - 1; i >= 0 && j < nq; i--) {
        Py_UCS4 c = at(raw, i);
        if (is_ws(c)) continue;
        if (c != at(q, q->len - 1 - j)) break;
        j++;
    }
    return j;
}

/* bisect_left of x in a list of ints (the query's non-blank positions); -2 on error. */
static Py_ssize_t bisect_left_list(PyObject *lst, Py_ssize_t x) {
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(lst);
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        Py_ssize_t v = PyLong_AsSsize_t(PyList_GET_ITEM(lst, mid));
        if (v == -1 && PyErr_Occurred()) return -2;
        if (v < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* nb[r] for a list of ints; -1 (with an error set) on failure */
static Py_ssize_t item(PyObject *lst, Py_ssize_t r) { return PyLong_AsSsize_t(PyList_GET_ITEM(lst, r)); }

/* scan(raw, tok, q_before, q_after, need_b, need_a, known, done, nonblanks, tok_pos, norm_len,
 *      min_chars, window, max_seen, max_scored)
 *   -> (too_many, best_p, best_sb, best_sa, held, resume, reach_b, reach_a, new, done)
 *
 * rawsearch.scan_raw's loop over the occurrences of ``tok`` in ``raw`` (the positions in ``known``
 * first, then those found from known[-1] + 1 unless ``done``): an occurrence holds the window
 * when need_b / need_a non-blank characters before / after it agree with the query (q_before ends
 * with the window's part before the token, q_after starts with its part after it); the held ones
 * are scored by how far they agree (at most all of q_before / q_after) and the first that agrees
 * furthest is kept. ``nonblanks``: the positions of the query normal form's non-blank characters,
 * ``tok_pos`` where the token starts in it, ``norm_len`` its length (for whether the best alone
 * gives ``min_chars``). too_many: more than max_seen occurrences (``resume`` is then the last).
 */
static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *raw_o, *tok_o, *qb_o, *qa_o, *known, *nbl;
    Py_ssize_t need_b, need_a, tok_pos, norm_len, min_chars, window, max_seen, max_scored;
    int done;
    if (!PyArg_ParseTuple(args, "UUUUnnO!pO!nnnnnn", &raw_o, &tok_o, &qb_o, &qa_o, &need_b, &need_a,
                          &PyTuple_Type, &known, &done, &PyList_Type, &nbl, &tok_pos, &norm_len, &min_chars,
                          &window, &max_seen, &max_scored))
        return NULL;
    Text raw, tok, qb, qa;
    if (text_of(raw_o, &raw, "raw") < 0 || text_of(tok_o, &tok, "tok") < 0 || text_of(qb_o, &qb, "q_before") < 0
        || text_of(qa_o, &qa, "q_after") < 0)
        return NULL;
    Py_ssize_t len = raw.len, n = tok.len, nb = qb.len, na = qa.len;
    if (n == 0 || need_b > nb || need_a > na || need_b < 0 || need_a < 0) {
        PyErr_SetString(PyExc_ValueError, "scan: inconsistent token or query parts");
        return NULL;
    }
    /* the token is found by memmem when both are one byte a character, else as str.find does */
    int bytewise = raw.kind == PyUnicode_1BYTE_KIND && tok.kind == PyUnicode_1BYTE_KIND;
    /* the non-blank ranks around the token, for whether the best alone gives min_chars */
    Py_ssize_t n_nb = PyList_GET_SIZE(nbl);
    Py_ssize_t r_tok = bisect_left_list(nbl, tok_pos), r_end = bisect_left_list(nbl, tok_pos + n);
    if (r_tok == -2 || r_end == -2) return NULL;

    PyObject *held = PyList_New(0), *newp = PyList_New(0);
    if (held == NULL || newp == NULL) goto fail;
    Py_ssize_t n_known = PyTuple_GET_SIZE(known), i = 0, nxt = 0;
    if (n_known) {
        nxt = PyLong_AsSsize_t(PyTuple_GET_ITEM(known, n_known - 1)) + 1;
        if (nxt == 0 && PyErr_Occurred()) goto fail;
    }
    Py_ssize_t best = -1, best_p = -1, best_sb = 0, best_sa = 0, seen = 0, reach_b = 0, reach_a = 0;
    Py_ssize_t resume = -1, n_held = 0;
    int too_many = 0, settled = min_chars <= window;
    for (;;) {
        Py_ssize_t p;
        if (i < n_known) {
            p = PyLong_AsSsize_t(PyTuple_GET_ITEM(known, i++));
            if (p == -1 && PyErr_Occurred()) goto fail;
            if (p < 0 || p + n > len) {
                PyErr_SetString(PyExc_ValueError, "scan: a kept position is outside the text");
                goto fail;
            }
        } else if (done) {
            break;
        } else {
            if (bytewise) {
                const Py_UCS1 *r = raw.data;
                const Py_UCS1 *hit = nxt <= len - n ? memmem(r + nxt, len - nxt, tok.data, n) : NULL;
                p = hit == NULL ? -1 : hit - r;
            } else {
                p = nxt <= len - n ? PyUnicode_Find(raw_o, tok_o, nxt, len, 1) : -1;
                if (p == -2) goto fail;
            }
            if (p < 0) {
                done = 1;
                break;
            }
            PyObject *v = PyLong_FromSsize_t(p);
            if (v == NULL || PyList_Append(newp, v) < 0) {
                Py_XDECREF(v);
                goto fail;
            }
            Py_DECREF(v);
            nxt = p + 1;
        }
        seen++;
        if (seen > max_seen) {
            too_many = 1;
            resume = p;
            break;
        }
        if (n_held >= max_scored) {
            resume = p;
            break;
        }
        Py_ssize_t e = p + n;
        Py_ssize_t sa = agree_after(&raw, e, &qa, na);
        if (sa < need_a) continue;
        Py_ssize_t sb_min = agree_before(&raw, p, &qb, need_b); /* (q_before ends with the window's part) */
        if (sb_min < need_b) continue;
        PyObject *v = PyLong_FromSsize_t(p);
        if (v == NULL || PyList_Append(held, v) < 0) {
            Py_XDECREF(v);
            goto fail;
        }
        Py_DECREF(v);
        n_held++;
        if (settled && sa + nb <= best) continue; /* it cannot beat the best, long enough alone */
        Py_ssize_t sb = agree_before(&raw, p, &qb, nb);
        if (sb > reach_b) reach_b = sb;
        if (sa > reach_a) reach_a = sa;
        if (sb + sa > best) {
            best = sb + sa, best_p = p, best_sb = sb, best_sa = sa;
            if (sb == nb && sa == na) {
                resume = p + 1;
                break;
            }
            if (!settled) { /* the query characters the best agrees with, blanks included */
                Py_ssize_t a = tok_pos, b = tok_pos + n;
                if (sb > 0) {
                    Py_ssize_t r = r_tok - sb;
                    a = r >= 0 ? item(nbl, r) : 0;
                }
                if (sa > 0) {
                    Py_ssize_t r = r_end + sa - 1;
                    b = r < n_nb ? item(nbl, r) + 1 : norm_len;
                }
                if (PyErr_Occurred()) goto fail;
                settled = b - a >= min_chars;
            }
        }
    }
    PyObject *res;
    if (best_p < 0)
        res = Py_BuildValue("(iOnnNnnnNO)", too_many, Py_None, best_sb, best_sa, held, resume, reach_b, reach_a, newp,
                            done ? Py_True : Py_False);
    else
        res = Py_BuildValue("(innnNnnnNO)", too_many, best_p, best_sb, best_sa, held, resume, reach_b, reach_a, newp,
                            done ? Py_True : Py_False);
    return res;
fail:
    Py_XDECREF(held);
    Py_XDECREF(newp);
    return NULL;
}

static PyMethodDef methods[] = {
    {"normalize_ws", normalize_ws, METH_O, "normalize.normalize of a text in NFC."},
    {"scan", scan, METH_VARARGS, "rawsearch.scan_raw's occurrence loop."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speedups", "Compiled kernels of the attribution query path.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__speedups(void) {
    init_tables();
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "API", SPEEDUPS_API) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
