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

/* Append the int v to a list; -1 on error. */
static int append_int(PyObject *lst, Py_ssize_t v) {
    PyObject *o = PyLong_FromSsize_t(v);
    int rc = o == NULL ? -1 : PyList_Append(lst, o);
    Py_XDECREF(o);
    return rc;
}

/* One scan: its arguments, and what it has seen so far. */
typedef struct {
    PyObject *raw_o, *tok_o, *known, *nbl, *held, *newp;
    Text raw, tok, qb, qa;
    Py_ssize_t need_b, need_a, tok_pos, norm_len, min_chars, window, max_seen, max_scored;
    Py_ssize_t r_tok, r_end;     /* the ranks of the token's start and end among the query's non-blanks */
    Py_ssize_t i, nxt;           /* the next kept position to take; where str.find goes on */
    Py_ssize_t best, best_p, best_sb, best_sa, reach_b, reach_a, seen, resume;
    int done, bytewise, too_many, settled;
} Scan;

/* The next occurrence of the token: 1 (at *p), 0 when there is none, -1 on error. The kept
 * positions first, then those found from the last one kept on (added to s->newp). */
static int next_position(Scan *s, Py_ssize_t *p) {
    Py_ssize_t len = s->raw.len, n = s->tok.len;
    if (s->i < PyTuple_GET_SIZE(s->known)) {
        *p = PyLong_AsSsize_t(PyTuple_GET_ITEM(s->known, s->i++));
        if (*p == -1 && PyErr_Occurred()) return -1;
        if (*p < 0 || *p + n > len) {
            PyErr_SetString(PyExc_ValueError, "scan: a kept position is outside the text");
            return -1;
        }
        return 1;
    }
    if (s->done) return 0;
    if (s->nxt > len - n) {
        *p = -1;
    } else if (s->bytewise) { /* one byte a character on both sides: memmem is str.find */
        const Py_UCS1 *r = s->raw.data, *hit = memmem(r + s->nxt, len - s->nxt, s->tok.data, n);
        *p = hit == NULL ? -1 : hit - r;
    } else {
        *p = PyUnicode_Find(s->raw_o, s->tok_o, s->nxt, len, 1);
        if (*p == -2) return -1;
    }
    if (*p < 0) {
        s->done = 1;
        return 0;
    }
    s->nxt = *p + 1;
    return append_int(s->newp, *p) < 0 ? -1 : 1;
}

/* Whether the best occurrence alone gives min_chars: the query characters it agrees with (sb
 * non-blanks before the token, sa after it), blanks included (rawsearch._unflat_back/_fwd). */
static int settles(Scan *s, Py_ssize_t sb, Py_ssize_t sa) {
    Py_ssize_t a = s->tok_pos, b = s->tok_pos + s->tok.len;
    if (sb > 0) {
        Py_ssize_t r = s->r_tok - sb;
        a = r >= 0 ? PyLong_AsSsize_t(PyList_GET_ITEM(s->nbl, r)) : 0;
    }
    if (sa > 0) {
        Py_ssize_t r = s->r_end + sa - 1;
        b = r < PyList_GET_SIZE(s->nbl) ? PyLong_AsSsize_t(PyList_GET_ITEM(s->nbl, r)) + 1 : s->norm_len;
    }
    if (PyErr_Occurred()) return -1;
    return b - a >= s->min_chars;
}

/* Score the occurrence at p: 1 when it agrees with all of the query's context (the scan stops),
 * 0 otherwise, -1 on error. An occurrence that holds the window joins s->held. */
static int score(Scan *s, Py_ssize_t p) {
    Py_ssize_t nb = s->qb.len, na = s->qa.len;
    Py_ssize_t sa = agree_after(&s->raw, p + s->tok.len, &s->qa, na);
    if (sa < s->need_a || agree_before(&s->raw, p, &s->qb, s->need_b) < s->need_b)
        return 0; /* (q_before ends with the window's part before the token) */
    if (append_int(s->held, p) < 0) return -1;
    if (s->settled && sa + nb <= s->best) return 0; /* it cannot beat the best, long enough alone */
    Py_ssize_t sb = agree_before(&s->raw, p, &s->qb, nb);
    if (sb > s->reach_b) s->reach_b = sb;
    if (sa > s->reach_a) s->reach_a = sa;
    if (sb + sa <= s->best) return 0;
    s->best = sb + sa, s->best_p = p, s->best_sb = sb, s->best_sa = sa;
    if (sb == nb && sa == na) {
        s->resume = p + 1;
        return 1;
    }
    if (!s->settled && (s->settled = settles(s, sb, sa)) < 0) return -1;
    return 0;
}

/* The loop: 0, or -1 on error. */
static int run_scan(Scan *s) {
    for (;;) {
        Py_ssize_t p;
        int got = next_position(s, &p);
        if (got <= 0) return got;
        if (++s->seen > s->max_seen) {
            s->too_many = 1;
            s->resume = p;
            return 0;
        }
        if (PyList_GET_SIZE(s->held) >= s->max_scored) {
            s->resume = p;
            return 0;
        }
        got = score(s, p);
        if (got != 0) return got < 0 ? -1 : 0;
    }
}

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
    Scan s = {0};
    PyObject *qb_o, *qa_o;
    if (!PyArg_ParseTuple(args, "UUUUnnO!pO!nnnnnn", &s.raw_o, &s.tok_o, &qb_o, &qa_o, &s.need_b, &s.need_a,
                          &PyTuple_Type, &s.known, &s.done, &PyList_Type, &s.nbl, &s.tok_pos, &s.norm_len,
                          &s.min_chars, &s.window, &s.max_seen, &s.max_scored))
        return NULL;
    if (text_of(s.raw_o, &s.raw, "raw") < 0 || text_of(s.tok_o, &s.tok, "tok") < 0
        || text_of(qb_o, &s.qb, "q_before") < 0 || text_of(qa_o, &s.qa, "q_after") < 0)
        return NULL;
    if (s.tok.len == 0 || s.need_b > s.qb.len || s.need_a > s.qa.len || s.need_b < 0 || s.need_a < 0) {
        PyErr_SetString(PyExc_ValueError, "scan: inconsistent token or query parts");
        return NULL;
    }
    s.bytewise = s.raw.kind == PyUnicode_1BYTE_KIND && s.tok.kind == PyUnicode_1BYTE_KIND;
    s.r_tok = bisect_left_list(s.nbl, s.tok_pos);
    s.r_end = bisect_left_list(s.nbl, s.tok_pos + s.tok.len);
    if (s.r_tok == -2 || s.r_end == -2) return NULL;
    Py_ssize_t n_known = PyTuple_GET_SIZE(s.known);
    if (n_known) {
        s.nxt = PyLong_AsSsize_t(PyTuple_GET_ITEM(s.known, n_known - 1)) + 1;
        if (s.nxt == 0 && PyErr_Occurred()) return NULL;
    }
    s.best = s.best_p = s.resume = -1;
    s.settled = s.min_chars <= s.window;
    s.held = PyList_New(0);
    s.newp = PyList_New(0);
    if (s.held == NULL || s.newp == NULL || run_scan(&s) < 0) {
        Py_XDECREF(s.held);
        Py_XDECREF(s.newp);
        return NULL;
    }
    PyObject *best_p = s.best_p < 0 ? Py_NewRef(Py_None) : PyLong_FromSsize_t(s.best_p);
    if (best_p == NULL) {
        Py_DECREF(s.held);
        Py_DECREF(s.newp);
        return NULL;
    }
    return Py_BuildValue("(iNnnNnnnNO)", s.too_many, best_p, s.best_sb, s.best_sa, s.held, s.resume, s.reach_b,
                         s.reach_a, s.newp, s.done ? Py_True : Py_False);
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
