/* The lossless coder's per-coefficient loops in C: the same integer arithmetic as the NumPy
 * reference in aecompress/lossless_coder.py (which the tests compare against), without its
 * temporaries. Plain buffer protocol, no NumPy headers: any writable or readable buffer of the
 * right item size and rank will do, strided or not. Every loop runs without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define PAD 2
#define FEATURES 10
#define SOURCES 7 /* parent, parent_nb, siblings, luma, cb, low_h, low_v */
#define MAX_VIEWS 4
#define MAX_BUCKETS 256

typedef struct {
    const char *buf;
    Py_ssize_t rows, cols, s0, s1;
} Plane2;

static int get_buffer(PyObject *obj, Py_buffer *view, int ndim, Py_ssize_t itemsize, int writable, const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_STRIDES | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (view->ndim != ndim || view->itemsize != itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: expected %d-D items of %zd bytes", name, ndim, itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* A pass's views ((y, x, s), ...) of an h x w band: checked, and how many positions they hold. */
static int parse_views(PyObject *views_obj, Py_ssize_t h, Py_ssize_t w, Py_ssize_t views[MAX_VIEWS][3],
                       Py_ssize_t *nviews, Py_ssize_t *total) {
    if (!PyTuple_Check(views_obj) || PyTuple_GET_SIZE(views_obj) > MAX_VIEWS) {
        PyErr_SetString(PyExc_ValueError, "views: a tuple of at most four (y, x, s)");
        return -1;
    }
    *nviews = PyTuple_GET_SIZE(views_obj);
    *total = 0;
    for (Py_ssize_t i = 0; i < *nviews; i++) {
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(views_obj, i), "nnn", &views[i][0], &views[i][1], &views[i][2]))
            return -1;
        if (views[i][0] < 0 || views[i][1] < 0 || views[i][2] < 1) {
            PyErr_SetString(PyExc_ValueError, "views: bad view");
            return -1;
        }
        Py_ssize_t ny = views[i][0] < h ? (h - views[i][0] + views[i][2] - 1) / views[i][2] : 0;
        Py_ssize_t nx = views[i][1] < w ? (w - views[i][1] + views[i][2] - 1) / views[i][2] : 0;
        *total += ny * nx;
    }
    return 0;
}

/* The context sources of a band: parent and its neighbours' sums at half resolution (zero
 * beyond their edges), siblings, luma, Cb, the low band's steps across and along at the
 * band's shape; int16, rows contiguous; None where a band has none. */
typedef struct {
    Py_buffer view[SOURCES];
    int have[SOURCES];
    Plane2 plane[SOURCES];
} Sources;

static void release_sources(Sources *S) {
    for (int i = 0; i < SOURCES; i++)
        if (S->have[i]) {
            PyBuffer_Release(&S->view[i]);
            S->have[i] = 0;
        }
}

static int get_sources(PyObject *obj, Py_ssize_t h, Py_ssize_t w, Sources *S) {
    memset(S->have, 0, sizeof(S->have));
    if (!PyTuple_Check(obj) || PyTuple_GET_SIZE(obj) != SOURCES) {
        PyErr_SetString(PyExc_ValueError, "sources: a tuple of seven arrays or None");
        return -1;
    }
    for (int i = 0; i < SOURCES; i++) {
        PyObject *o = PyTuple_GET_ITEM(obj, i);
        if (o == Py_None)
            continue;
        if (get_buffer(o, &S->view[i], 2, 2, 0, "source") < 0) {
            release_sources(S);
            return -1;
        }
        S->have[i] = 1;
        Py_buffer *v = &S->view[i];
        S->plane[i] = (Plane2){v->buf, v->shape[0], v->shape[1], v->strides[0], v->strides[1]};
        if ((i >= 2 && (v->shape[0] != h || v->shape[1] != w)) || v->strides[1] != 2) {
            PyErr_SetString(PyExc_ValueError, "sources: one is not the band's shape or not contiguous in rows");
            release_sources(S);
            return -1;
        }
    }
    return 0;
}

/* which feature each source feeds */
static const int feature_of[SOURCES] = {0, 1, 2, 3, 4, 8, 9};

/* The activities of a pass in coding order (see lossless_coder._Band.activity): cur holds the
 * band's decoded magnitudes (int32, PAD-bordered, rows contiguous), zeros w + 2 zeros. */
static void activity_loop(const Plane2 *cur, const Sources *S, const int32_t wts[FEATURES],
                          Py_ssize_t views[MAX_VIEWS][3], Py_ssize_t nviews, Py_ssize_t h, Py_ssize_t w,
                          const int16_t *zeros, int32_t *out) {
    Py_ssize_t k = 0;
    for (Py_ssize_t v = 0; v < nviews; v++) {
        Py_ssize_t y0 = views[v][0], x0 = views[v][1], s = views[v][2];
        for (Py_ssize_t y = y0; y < h; y += s) {
            /* this row of each source, a row of zeros where a source is absent or weighs
             * nothing (so the inner loop is the same fixed sum everywhere); the parent's
             * (row y / 2) are zero past their edges */
            const int16_t *row[SOURCES];
            Py_ssize_t limit[2];
            int32_t wt_row[SOURCES];
            for (int i = 0; i < SOURCES; i++) {
                int32_t wi = wts[feature_of[i]];
                Py_ssize_t ry = i < 2 ? y >> 1 : y;
                int use = S->have[i] && wi && ry < S->plane[i].rows;
                row[i] = use ? (const int16_t *)(S->plane[i].buf + ry * S->plane[i].s0) : zeros;
                wt_row[i] = use ? wi : 0;
                if (i < 2)
                    limit[i] = use ? 2 * S->plane[i].cols : w; /* x < limit: x / 2 inside */
            }
            const char *base = cur->buf + (y + PAD) * cur->s0;
            const int32_t *c0 = (const int32_t *)base + PAD;
            const int32_t *cm1 = (const int32_t *)(base - cur->s0) + PAD, *cp1 = (const int32_t *)(base + cur->s0) + PAD;
            const int32_t *cm2 = (const int32_t *)(base - 2 * cur->s0) + PAD;
            const int32_t *cp2 = (const int32_t *)(base + 2 * cur->s0) + PAD;
            const int32_t w5 = wts[5], w6 = wts[6], w7 = wts[7];
            const int16_t *r0 = row[0], *r1 = row[1], *r2 = row[2], *r3 = row[3], *r4 = row[4], *r5 = row[5];
            const int16_t *r6 = row[6];
            const int32_t v0 = wt_row[0], v1 = wt_row[1], v2 = wt_row[2], v3 = wt_row[3], v4 = wt_row[4];
            const int32_t v5 = wt_row[5], v6 = wt_row[6];
            const Py_ssize_t both = limit[0] < limit[1] ? limit[0] : limit[1];
            for (Py_ssize_t x = x0; x < w; x += s) {
                int32_t a = v2 * r2[x] + v3 * r3[x] + v4 * r4[x] + v5 * r5[x] + v6 * r6[x];
                Py_ssize_t hx = x >> 1;
                if (x < both)
                    a += v0 * r0[hx] + v1 * r1[hx];
                else {
                    if (x < limit[0])
                        a += v0 * r0[hx];
                    if (x < limit[1])
                        a += v1 * r1[hx];
                }
                a += w5 * (cm1[x] + cp1[x] + c0[x - 1] + c0[x + 1]);
                a += w6 * (cm1[x - 1] + cm1[x + 1] + cp1[x - 1] + cp1[x + 1]);
                a += w7 * (cm2[x] + cp2[x] + c0[x - 2] + c0[x + 2] + cm2[x - 2] + cm2[x + 2] + cp2[x - 2] + cp2[x + 2]);
                out[k++] = a;
            }
        }
    }
}

static int get_weights(PyObject *obj, int32_t wts[FEATURES]) {
    Py_buffer v;
    if (get_buffer(obj, &v, 1, 4, 0, "weights") < 0)
        return -1;
    int ok = v.shape[0] == FEATURES;
    for (int i = 0; ok && i < FEATURES; i++)
        wts[i] = *(const int32_t *)((const char *)v.buf + i * v.strides[0]);
    PyBuffer_Release(&v);
    if (!ok)
        PyErr_SetString(PyExc_ValueError, "weights: expected ten");
    return ok ? 0 : -1;
}

/* cur: int32, PAD-bordered around an h x w band, rows contiguous */
static int check_cur(Py_buffer *cur, Py_ssize_t h, Py_ssize_t w) {
    if (cur->shape[0] != h + 2 * PAD || cur->shape[1] != w + 2 * PAD || cur->strides[1] != 4) {
        PyErr_SetString(PyExc_ValueError, "cur: not the band's shape with its border, or rows not contiguous");
        return -1;
    }
    return 0;
}

/* activity(out, cur, views, weights, sources): pass activities in coding order into out (int32,
 * 1-D). cur: the band's decoded magnitudes (int32, PAD-bordered), views: ((y, x, s), ...),
 * weights: 10 int32, sources: 7 int16 2-D arrays or None (parent and its neighbours at half
 * resolution, zero beyond their edge; the rest at the band's shape). */
static PyObject *activity(PyObject *self, PyObject *args) {
    PyObject *out_obj, *cur_obj, *views_obj, *weights_obj, *sources_obj;
    if (!PyArg_ParseTuple(args, "OOOOO", &out_obj, &cur_obj, &views_obj, &weights_obj, &sources_obj))
        return NULL;
    Py_buffer out_v, cur_v;
    Sources S;
    Py_ssize_t views[MAX_VIEWS][3], nviews, total;
    int32_t wts[FEATURES];
    PyObject *result = NULL;
    int got = 0;
    int16_t *zeros = NULL; /* the row of an absent source */
    if (get_buffer(out_obj, &out_v, 1, 4, 1, "out") < 0) goto done;
    got = 1;
    if (get_buffer(cur_obj, &cur_v, 2, 4, 0, "cur") < 0) goto done;
    got = 2;
    Py_ssize_t h = cur_v.shape[0] - 2 * PAD, w = cur_v.shape[1] - 2 * PAD;
    if (h < 0 || w < 0 || check_cur(&cur_v, h, w) < 0 || get_weights(weights_obj, wts) < 0 ||
        parse_views(views_obj, h, w, views, &nviews, &total) < 0)
        goto done;
    if (total != out_v.shape[0] || out_v.strides[0] != 4) {
        PyErr_SetString(PyExc_ValueError, "activity: output size does not match the views");
        goto done;
    }
    if (get_sources(sources_obj, h, w, &S) < 0) goto done;
    got = 3;
    zeros = PyMem_RawCalloc(w + 2, sizeof(int16_t));
    if (!zeros) {
        PyErr_NoMemory();
        goto done;
    }
    {
        Plane2 cur = {cur_v.buf, cur_v.shape[0], cur_v.shape[1], cur_v.strides[0], cur_v.strides[1]};
        Py_BEGIN_ALLOW_THREADS
        activity_loop(&cur, &S, wts, views, nviews, h, w, zeros, (int32_t *)out_v.buf);
        Py_END_ALLOW_THREADS
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_RawFree(zeros);
    if (got >= 3) release_sources(&S);
    if (got >= 2) PyBuffer_Release(&cur_v);
    if (got >= 1) PyBuffer_Release(&out_v);
    return result;
}

static inline uint8_t bucket_of(int32_t a, int32_t scale, const uint8_t *lut, Py_ssize_t lut_size) {
    int64_t v = a;
    if (scale != 16)
        v = (v * scale + 8) >> 4;
    if (v > lut_size - 1)
        v = lut_size - 1;
    if (v < 0)
        v = 0; /* activities are sums of non-negative terms: never taken */
    return lut[v];
}

/* Buckets of activities scaled by scale / 16 and looked up in lut, then a stable counting sort:
 * order receives the positions grouped by bucket, ascending, in coding order within each;
 * counts (nb) how many each got. b: n bytes of scratch. */
static void counting_sort(const int32_t *act, Py_ssize_t n, int32_t scale, const uint8_t *lut, Py_ssize_t lut_size,
                          Py_ssize_t nb, int32_t *order, int64_t *counts, uint8_t *b) {
    int64_t start[MAX_BUCKETS];
    memset(counts, 0, nb * sizeof(int64_t));
    for (Py_ssize_t i = 0; i < n; i++) {
        b[i] = bucket_of(act[i], scale, lut, lut_size);
        counts[b[i]]++;
    }
    int64_t s = 0;
    for (Py_ssize_t j = 0; j < nb; j++) {
        start[j] = s;
        s += counts[j];
    }
    for (Py_ssize_t i = 0; i < n; i++)
        order[start[b[i]]++] = (int32_t)i;
}

static int check_lut(Py_buffer *lut, Py_ssize_t nb) {
    const uint8_t *t = lut->buf;
    if (lut->shape[0] < 1 || lut->strides[0] != 1 || nb > MAX_BUCKETS) {
        PyErr_SetString(PyExc_ValueError, "lut: empty or not contiguous");
        return -1;
    }
    for (Py_ssize_t i = 0; i < lut->shape[0]; i++)
        if (t[i] >= nb) {
            PyErr_SetString(PyExc_ValueError, "lut: a bucket beyond the counts");
            return -1;
        }
    return 0;
}

/* bucket_order(act, scale, lut, order, counts) -> [(bucket, start, end), ...]: each activity
 * scaled by scale / 16 (rounded as the NumPy path does) and looked up in lut; order (int32,
 * len(act)) receives the positions grouped by bucket, ascending, in coding order within each (a
 * stable counting sort), counts (int64, one per bucket) how many each got; the list gives the
 * runs of order that each bucket present holds. */
static PyObject *bucket_order(PyObject *self, PyObject *args) {
    PyObject *act_obj, *lut_obj, *order_obj, *counts_obj;
    int scale;
    if (!PyArg_ParseTuple(args, "OiOOO", &act_obj, &scale, &lut_obj, &order_obj, &counts_obj))
        return NULL;
    Py_buffer act_v, lut_v, order_v, counts_v;
    int got = 0;
    PyObject *result = NULL;
    uint8_t *b = NULL;
    if (get_buffer(act_obj, &act_v, 1, 4, 0, "act") < 0) goto done;
    got = 1;
    if (get_buffer(lut_obj, &lut_v, 1, 1, 0, "lut") < 0) goto done;
    got = 2;
    if (get_buffer(order_obj, &order_v, 1, 4, 1, "order") < 0) goto done;
    got = 3;
    if (get_buffer(counts_obj, &counts_v, 1, 8, 1, "counts") < 0) goto done;
    got = 4;
    Py_ssize_t n = act_v.shape[0], nb = counts_v.shape[0];
    if (order_v.shape[0] != n || order_v.strides[0] != 4 || act_v.strides[0] != 4 || counts_v.strides[0] != 8) {
        PyErr_SetString(PyExc_ValueError, "bucket_order: bad arguments");
        goto done;
    }
    if (check_lut(&lut_v, nb) < 0) goto done;
    b = PyMem_RawMalloc(n ? n : 1);
    if (!b) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *counts = counts_v.buf;
    Py_BEGIN_ALLOW_THREADS
    counting_sort(act_v.buf, n, scale, lut_v.buf, lut_v.shape[0], nb, order_v.buf, counts, b);
    Py_END_ALLOW_THREADS
    result = PyList_New(0);
    int64_t start = 0;
    for (Py_ssize_t j = 0; j < nb && result; j++) {
        if (!counts[j])
            continue;
        PyObject *run = Py_BuildValue("(nLL)", j, (long long)start, (long long)(start + counts[j]));
        if (!run || PyList_Append(result, run) < 0)
            Py_CLEAR(result);
        Py_XDECREF(run);
        start += counts[j];
    }
done:
    PyMem_RawFree(b);
    if (got >= 4) PyBuffer_Release(&counts_v);
    if (got >= 3) PyBuffer_Release(&order_v);
    if (got >= 2) PyBuffer_Release(&lut_v);
    if (got >= 1) PyBuffer_Release(&act_v);
    return result;
}

/* scale_costs(act, tok, step, scales, lut, lengths, costs): for each scale, the fixed-point bits
 * of tok[::step] coded with the buckets of act[::step] under that scale. lengths: int64
 * (buckets, tokens); costs: int64, one per scale. */
static PyObject *scale_costs(PyObject *self, PyObject *args) {
    PyObject *act_obj, *tok_obj, *scales_obj, *lut_obj, *len_obj, *costs_obj;
    Py_ssize_t step;
    if (!PyArg_ParseTuple(args, "OOnOOOO", &act_obj, &tok_obj, &step, &scales_obj, &lut_obj, &len_obj, &costs_obj))
        return NULL;
    Py_buffer act_v, tok_v, sc_v, lut_v, len_v, costs_v;
    int got = 0;
    PyObject *result = NULL;
    if (get_buffer(act_obj, &act_v, 1, 4, 0, "act") < 0) goto done;
    got = 1;
    if (get_buffer(tok_obj, &tok_v, 1, 4, 0, "tok") < 0) goto done;
    got = 2;
    if (get_buffer(scales_obj, &sc_v, 1, 4, 0, "scales") < 0) goto done;
    got = 3;
    if (get_buffer(lut_obj, &lut_v, 1, 1, 0, "lut") < 0) goto done;
    got = 4;
    if (get_buffer(len_obj, &len_v, 2, 8, 0, "lengths") < 0) goto done;
    got = 5;
    if (get_buffer(costs_obj, &costs_v, 1, 8, 1, "costs") < 0) goto done;
    got = 6;
    Py_ssize_t n = act_v.shape[0], ns = sc_v.shape[0], lut_size = lut_v.shape[0];
    Py_ssize_t nb = len_v.shape[0], nt = len_v.shape[1];
    if (tok_v.shape[0] != n || step < 1 || costs_v.shape[0] != ns || act_v.strides[0] != 4 || tok_v.strides[0] != 4 ||
        sc_v.strides[0] != 4 || lut_v.strides[0] != 1 || costs_v.strides[0] != 8 || len_v.strides[1] != 8 ||
        len_v.strides[0] != 8 * nt || lut_size < 1) {
        PyErr_SetString(PyExc_ValueError, "scale_costs: bad arguments");
        goto done;
    }
    const uint8_t *lut = (const uint8_t *)lut_v.buf;
    for (Py_ssize_t i = 0; i < lut_size; i++)
        if (lut[i] >= nb) {
            PyErr_SetString(PyExc_ValueError, "scale_costs: a bucket beyond the lengths");
            goto done;
        }
    const int32_t *tok = (const int32_t *)tok_v.buf;
    for (Py_ssize_t i = 0; i < n; i += step)
        if (tok[i] < 0 || tok[i] >= nt) {
            PyErr_SetString(PyExc_ValueError, "scale_costs: a token beyond the lengths");
            goto done;
        }
    {
        const int32_t *act = (const int32_t *)act_v.buf, *scales = (const int32_t *)sc_v.buf;
        const int64_t *lengths = (const int64_t *)len_v.buf;
        int64_t *costs = (int64_t *)costs_v.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t j = 0; j < ns; j++) {
            int64_t c = 0;
            for (Py_ssize_t i = 0; i < n; i += step)
                c += lengths[bucket_of(act[i], scales[j], lut, lut_size) * nt + tok[i]];
            costs[j] = c;
        }
        Py_END_ALLOW_THREADS
    }
    result = Py_NewRef(Py_None);
done:
    if (got >= 6) PyBuffer_Release(&costs_v);
    if (got >= 5) PyBuffer_Release(&len_v);
    if (got >= 4) PyBuffer_Release(&lut_v);
    if (got >= 3) PyBuffer_Release(&sc_v);
    if (got >= 2) PyBuffer_Release(&tok_v);
    if (got >= 1) PyBuffer_Release(&act_v);
    return result;
}

/* apply_signs(v, data, pos) -> pos after: negates v's nonzero values whose sign bit (read from
 * bit pos of data, least significant bit first) is set; -1 if data runs out. */
static PyObject *apply_signs(PyObject *self, PyObject *args) {
    PyObject *v_obj, *data_obj;
    Py_ssize_t pos;
    if (!PyArg_ParseTuple(args, "OOn", &v_obj, &data_obj, &pos))
        return NULL;
    Py_buffer v_v, d_v;
    if (get_buffer(v_obj, &v_v, 1, 4, 1, "v") < 0)
        return NULL;
    if (PyObject_GetBuffer(data_obj, &d_v, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&v_v);
        return NULL;
    }
    Py_ssize_t n = v_v.shape[0], bits = 8 * d_v.len, s = v_v.strides[0];
    char *vb = v_v.buf;
    const uint8_t *d = d_v.buf;
    if (pos < 0)
        pos = -1;
    else {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            int32_t *x = (int32_t *)(vb + i * s);
            if (!*x)
                continue;
            if (pos >= bits) {
                pos = -1;
                break;
            }
            if ((d[pos >> 3] >> (pos & 7)) & 1)
                *x = -*x;
            pos++;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&d_v);
    PyBuffer_Release(&v_v);
    return PyLong_FromSsize_t(pos);
}

/* Whole-sample symmetric extension (JPEG 2000 Part 1, F.3.8): the index, among the samples of
 * its parity, of position j's mirror inside a signal of length n (as reversible._mirror). */
static inline Py_ssize_t mirror(Py_ssize_t n, Py_ssize_t j) {
    if (n == 1)
        return 0;
    Py_ssize_t period = 2 * (n - 1);
    j %= period;
    if (j < 0)
        j += period;
    if (j > n - 1)
        j = period - j;
    return j / 2;
}

/* int32 arithmetic wrapping as NumPy's does (never reached by valid data, but the two paths
 * must agree on everything); >> on int32 is arithmetic in gcc, clang and MSVC, as in NumPy */
#define WRAP(e) ((int32_t)(uint32_t)(e))
#define U(v) ((uint32_t)(v))

static int get_contiguous(PyObject *obj, Py_buffer *view, int writable, const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (view->ndim != 2 || view->itemsize != 4) {
        PyErr_Format(PyExc_ValueError, "%s: expected a 2-D array of 4-byte items", name);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static inline int32_t p53(int32_t a, int32_t b) { return WRAP(U(a) + U(b)) >> 1; }
static inline int32_t p97(int32_t o1, int32_t a, int32_t b, int32_t o2) {
    return WRAP(U(9) * (U(a) + U(b)) - (U(o1) + U(o2)) + U(8)) >> 4;
}
static inline int32_t u53(int32_t a, int32_t b) { return WRAP(U(a) + U(b) + U(2)) >> 2; }
static inline int32_t u137(int32_t o1, int32_t a, int32_t b, int32_t o2) {
    return WRAP(U(9) * (U(a) + U(b)) - (U(o1) + U(o2)) + U(16)) >> 5;
}
static inline int32_t step(int32_t v, int32_t by, int sign) { return sign > 0 ? WRAP(U(v) + U(by)) : WRAP(U(v) - U(by)); }

/* Rows of nb values at once (lifting down the columns): d += sign * prediction from four rows
 * of s (the positions 2i - 2, 2i, 2i + 2, 2i + 4 of the signal); s += sign * update from four
 * rows of d (2i - 3, 2i - 1, 2i + 1, 2i + 3). The 5/3 uses only the middle two. */
static void predict_rows(int32_t *d, const int32_t *o1, const int32_t *a, const int32_t *b, const int32_t *o2,
                         Py_ssize_t nb, int kernel, int sign) {
    if (kernel == 0)
        for (Py_ssize_t j = 0; j < nb; j++)
            d[j] = step(d[j], p53(a[j], b[j]), sign);
    else
        for (Py_ssize_t j = 0; j < nb; j++)
            d[j] = step(d[j], p97(o1[j], a[j], b[j], o2[j]), sign);
}

static void update_rows(int32_t *s, const int32_t *o1, const int32_t *a, const int32_t *b, const int32_t *o2,
                        Py_ssize_t nb, int kernel, int sign) {
    if (kernel != 2)
        for (Py_ssize_t j = 0; j < nb; j++)
            s[j] = step(s[j], u53(a[j], b[j]), sign);
    else
        for (Py_ssize_t j = 0; j < nb; j++)
            s[j] = step(s[j], u137(o1[j], a[j], b[j], o2[j]), sign);
}

/* One signal's lifting steps on its even samples S (ns) and odd samples D (nd), contiguous:
 * sm[k] is the S index of position 2(k - 1), dm[k] the D index of position 2(k - 2) + 1, after
 * symmetric extension. Inside the signal the taps are plain neighbours: those loops need no
 * table. */
static void predict_line(int32_t *S, int32_t *D, Py_ssize_t n, Py_ssize_t nd, const Py_ssize_t *sm, int kernel,
                         int sign) {
    Py_ssize_t lo = 1, hi = n >= 5 ? (n - 5) / 2 + 1 : 1; /* 2i - 2 >= 0 and 2i + 4 <= n - 1 */
    if (hi > nd) hi = nd;
    if (hi < lo) hi = lo;
    for (Py_ssize_t i = 0; i < nd; i++) {
        if (i == lo && hi > lo) {
            if (kernel == 0)
                for (; i < hi; i++)
                    D[i] = step(D[i], p53(S[i], S[i + 1]), sign);
            else
                for (; i < hi; i++)
                    D[i] = step(D[i], p97(S[i - 1], S[i], S[i + 1], S[i + 2]), sign);
            if (i >= nd)
                break;
        }
        int32_t by = kernel == 0 ? p53(S[sm[i + 1]], S[sm[i + 2]]) : p97(S[sm[i]], S[sm[i + 1]], S[sm[i + 2]], S[sm[i + 3]]);
        D[i] = step(D[i], by, sign);
    }
}

static void update_line(int32_t *S, int32_t *D, Py_ssize_t n, Py_ssize_t ns, const Py_ssize_t *dm, int kernel,
                        int sign) {
    Py_ssize_t lo = 2, hi = n >= 4 ? (n - 4) / 2 + 1 : 2; /* 2i - 3 >= 0 and 2i + 3 <= n - 1 */
    if (hi > ns) hi = ns;
    if (hi < lo) hi = lo;
    for (Py_ssize_t i = 0; i < ns; i++) {
        if (i == lo && hi > lo) {
            if (kernel != 2)
                for (; i < hi; i++)
                    S[i] = step(S[i], u53(D[i - 1], D[i]), sign);
            else
                for (; i < hi; i++)
                    S[i] = step(S[i], u137(D[i - 2], D[i - 1], D[i], D[i + 1]), sign);
            if (i >= ns)
                break;
        }
        int32_t by = kernel != 2 ? u53(D[dm[i + 1]], D[dm[i + 2]]) : u137(D[dm[i]], D[dm[i + 1]], D[dm[i + 2]], D[dm[i + 3]]);
        S[i] = step(S[i], by, sign);
    }
}

/* lift(x, s, d, axis, kernel, inverse): forward (x -> even samples s and odd samples d, each
 * lifted) or inverse (s, d -> x) along axis of C-contiguous 2-D int32 arrays; kernel indexes
 * reversible.KERNELS. */
static PyObject *lift(PyObject *self, PyObject *args) {
    PyObject *x_obj, *s_obj, *d_obj;
    int axis, kernel, inverse;
    if (!PyArg_ParseTuple(args, "OOOiip", &x_obj, &s_obj, &d_obj, &axis, &kernel, &inverse))
        return NULL;
    if (axis < 0 || axis > 1 || kernel < 0 || kernel > 2) {
        PyErr_SetString(PyExc_ValueError, "lift: bad axis or kernel");
        return NULL;
    }
    Py_buffer xv, sv, dv;
    int got = 0;
    PyObject *result = NULL;
    Py_ssize_t *sm = NULL, *dm = NULL;
    int32_t *tmp = NULL;
    if (get_contiguous(x_obj, &xv, inverse, "x") < 0) goto done;
    got = 1;
    if (get_contiguous(s_obj, &sv, !inverse, "s") < 0) goto done;
    got = 2;
    if (get_contiguous(d_obj, &dv, !inverse, "d") < 0) goto done;
    got = 3;
    Py_ssize_t n = xv.shape[axis], nb = xv.shape[1 - axis], ns = (n + 1) / 2, nd = n / 2;
    if (sv.shape[axis] != ns || dv.shape[axis] != nd || sv.shape[1 - axis] != nb || dv.shape[1 - axis] != nb) {
        PyErr_SetString(PyExc_ValueError, "lift: band shapes do not match");
        goto done;
    }
    sm = PyMem_RawMalloc((nd + 3) * sizeof(Py_ssize_t));
    dm = PyMem_RawMalloc((ns + 3) * sizeof(Py_ssize_t));
    tmp = PyMem_RawMalloc((n + 1) * sizeof(int32_t));
    if (!sm || !dm || !tmp) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < nd + 3; k++)
        sm[k] = mirror(n, 2 * (k - 1));
    for (Py_ssize_t k = 0; k < ns + 3; k++)
        dm[k] = mirror(n, 2 * (k - 2) + 1);
    {
        int32_t *x = xv.buf, *s = sv.buf, *d = dv.buf;
        int sign = inverse ? -1 : 1;
        Py_BEGIN_ALLOW_THREADS
        if (axis == 1) {
            /* each row a signal, lifted in a contiguous copy of its halves */
            int32_t *S = tmp, *D = tmp + ns;
            for (Py_ssize_t b = 0; b < nb; b++) {
                int32_t *xr = x + b * n, *sr = s + b * ns, *dr = d + b * nd;
                if (!inverse) {
                    for (Py_ssize_t i = 0; i < nd; i++) {
                        S[i] = xr[2 * i];
                        D[i] = xr[2 * i + 1];
                    }
                    if (ns > nd)
                        S[ns - 1] = xr[n - 1];
                    if (nd) {
                        predict_line(S, D, n, nd, sm, kernel, -sign);
                        update_line(S, D, n, ns, dm, kernel, sign);
                    }
                    memcpy(sr, S, ns * sizeof(int32_t));
                    memcpy(dr, D, nd * sizeof(int32_t));
                } else {
                    memcpy(S, sr, ns * sizeof(int32_t));
                    memcpy(D, dr, nd * sizeof(int32_t));
                    if (nd) {
                        update_line(S, D, n, ns, dm, kernel, sign);
                        predict_line(S, D, n, nd, sm, kernel, -sign);
                    }
                    for (Py_ssize_t i = 0; i < nd; i++) {
                        xr[2 * i] = S[i];
                        xr[2 * i + 1] = D[i];
                    }
                    if (ns > nd)
                        xr[n - 1] = S[ns - 1];
                }
            }
        } else {
            /* each column a signal: whole rows at a time, in place on s and d (forward) or on
             * x's even and odd rows (inverse) */
            Py_ssize_t rs = nb, rx = 2 * nb; /* the halves' row strides, in elements */
            int32_t *S = inverse ? x : s, *D = inverse ? x + nb : d;
            Py_ssize_t srow = inverse ? rx : rs, drow = inverse ? rx : rs;
            for (Py_ssize_t i = 0; i < ns; i++)
                memcpy(inverse ? S + i * srow : s + i * rs, inverse ? s + i * rs : x + 2 * i * nb, nb * sizeof(int32_t));
            for (Py_ssize_t i = 0; i < nd; i++)
                memcpy(inverse ? D + i * drow : d + i * rs, inverse ? d + i * rs : x + (2 * i + 1) * nb, nb * sizeof(int32_t));
#define SROW(k) (S + sm[k] * srow)
#define DROW(k) (D + dm[k] * drow)
            if (nd && !inverse) {
                for (Py_ssize_t i = 0; i < nd; i++)
                    predict_rows(D + i * drow, SROW(i), SROW(i + 1), SROW(i + 2), SROW(i + 3), nb, kernel, -sign);
                for (Py_ssize_t i = 0; i < ns; i++)
                    update_rows(S + i * srow, DROW(i), DROW(i + 1), DROW(i + 2), DROW(i + 3), nb, kernel, sign);
            } else if (nd) {
                for (Py_ssize_t i = 0; i < ns; i++)
                    update_rows(S + i * srow, DROW(i), DROW(i + 1), DROW(i + 2), DROW(i + 3), nb, kernel, sign);
                for (Py_ssize_t i = 0; i < nd; i++)
                    predict_rows(D + i * drow, SROW(i), SROW(i + 1), SROW(i + 2), SROW(i + 3), nb, kernel, -sign);
            }
#undef SROW
#undef DROW
        }
        Py_END_ALLOW_THREADS
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_RawFree(sm);
    PyMem_RawFree(dm);
    PyMem_RawFree(tmp);
    if (got >= 3) PyBuffer_Release(&dv);
    if (got >= 2) PyBuffer_Release(&sv);
    if (got >= 1) PyBuffer_Release(&xv);
    return result;
}

/* A decoded pass put in place: tokens become magnitudes (below direct the token itself, else
 * its two bits below the leading one and raw's next value below them), cur receives each capped
 * at cap, out the value (with shift, the magnitude shifted up and its low bits from low below
 * it), negated where its sign bit (from bit *pos of signs, least significant
 * first) is set. Returns 0; -1 when the signs run out (*pos = -1), -2 when raw does not hold
 * exactly the raw values the tokens need. */
static int place_loop(const int32_t *tok, const int32_t *raw, Py_ssize_t nraw_values, const int32_t *low, int shift,
                      Py_buffer *cv, Py_buffer *ov, Py_ssize_t views[MAX_VIEWS][3], Py_ssize_t nviews,
                      const uint8_t *sg, Py_ssize_t bits, Py_ssize_t *pos_io, int direct, int cap) {
    Py_ssize_t h = ov->shape[0], w = ov->shape[1], k = 0, j = 0, pos = *pos_io;
    for (Py_ssize_t v = 0; v < nviews; v++) {
        Py_ssize_t y0 = views[v][0], x0 = views[v][1], s = views[v][2];
        for (Py_ssize_t y = y0; y < h; y += s) {
            char *crow = (char *)cv->buf + (y + PAD) * cv->strides[0] + PAD * cv->strides[1];
            char *orow = (char *)ov->buf + y * ov->strides[0];
            for (Py_ssize_t x = x0; x < w; x += s) {
                int32_t t = tok[k++], m;
                if (t < direct) {
                    m = t;
                } else {
                    int32_t e = t - direct, nraw = e / 4 + 2;
                    if (j >= nraw_values || nraw > 30 || raw[j] < 0)
                        return -2;
                    m = (int32_t)(((uint32_t)(4 | (e & 3)) << nraw) | (uint32_t)raw[j++]);
                }
                *(int32_t *)(crow + x * cv->strides[1]) = m < cap ? m : cap;
                if (shift)
                    m = (int32_t)(((uint32_t)m << shift) | (uint32_t)low[k - 1]);
                if (m) {
                    if (pos >= bits) {
                        *pos_io = -1;
                        return -1;
                    }
                    if ((sg[pos >> 3] >> (pos & 7)) & 1)
                        m = -m;
                    pos++;
                }
                *(int32_t *)(orow + x * ov->strides[1]) = m;
            }
        }
    }
    *pos_io = pos;
    return j == nraw_values ? 0 : -2;
}

static inline int bit_length(uint32_t v) {
#if defined(__GNUC__) || defined(__clang__)
    return v ? 32 - __builtin_clz(v) : 0;
#else
    int n = 0;
    while (v) {
        n++;
        v >>= 1;
    }
    return n;
#endif
}

/* scatter_tokens(parts, order, tok, nraw, direct, tokens) -> (tokens with raw bits, most raw
 * bits of one): the decoder's tokens, decoded bucket by bucket (parts: a list of int32 arrays,
 * one run of order each), put back in coding order (tok[order[k]] = the k-th of them; order
 * None: as they come); nraw receives, in coding order, the number of raw bits of each token >=
 * direct. */
#define MAX_PARTS 256
static PyObject *scatter_tokens(PyObject *self, PyObject *args) {
    PyObject *parts_obj, *o_obj, *t_obj, *n_obj;
    int direct, tokens;
    if (!PyArg_ParseTuple(args, "O!OOOii", &PyList_Type, &parts_obj, &o_obj, &t_obj, &n_obj, &direct, &tokens))
        return NULL;
    Py_ssize_t nparts = PyList_GET_SIZE(parts_obj);
    if (nparts > MAX_PARTS) {
        PyErr_SetString(PyExc_ValueError, "scatter_tokens: too many parts");
        return NULL;
    }
    Py_buffer pv[MAX_PARTS], ov, tv, nv;
    Py_ssize_t got_parts = 0;
    int got = 0, have_order = o_obj != Py_None;
    PyObject *result = NULL;
    Py_ssize_t n = 0;
    for (; got_parts < nparts; got_parts++) {
        if (get_buffer(PyList_GET_ITEM(parts_obj, got_parts), &pv[got_parts], 1, 4, 0, "part") < 0) goto done;
        if (pv[got_parts].strides[0] != 4) {
            got_parts++;
            PyErr_SetString(PyExc_ValueError, "scatter_tokens: a part is not contiguous");
            goto done;
        }
        n += pv[got_parts].shape[0];
    }
    if (get_buffer(t_obj, &tv, 1, 4, 1, "tok") < 0) goto done;
    got = 1;
    if (get_buffer(n_obj, &nv, 1, 4, 1, "nraw") < 0) goto done;
    got = 2;
    if (have_order && get_buffer(o_obj, &ov, 1, 4, 0, "order") < 0) goto done;
    got = 3;
    if (tv.shape[0] != n || nv.shape[0] != n || (have_order && ov.shape[0] != n) || tv.strides[0] != 4 ||
        nv.strides[0] != 4 || (have_order && ov.strides[0] != 4) || direct < 4) {
        PyErr_SetString(PyExc_ValueError, "scatter_tokens: bad arguments");
        goto done;
    }
    {
        const int32_t *order = have_order ? ov.buf : NULL;
        int32_t *tok = tv.buf, *nraw = nv.buf;
        Py_ssize_t nbig = 0, k = 0;
        int ok = 1, most = 0;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t j = 0; j < nparts && ok; j++) {
            const int32_t *g = pv[j].buf;
            Py_ssize_t m = pv[j].shape[0];
            if (order) {
                for (Py_ssize_t i = 0; i < m; i++, k++) {
                    if (order[k] < 0 || order[k] >= n) {
                        ok = 0;
                        break;
                    }
                    tok[order[k]] = g[i];
                }
            } else {
                memcpy(tok + k, g, m * sizeof(int32_t));
                k += m;
            }
        }
        for (Py_ssize_t i = 0; i < n && ok; i++) {
            int32_t t = tok[i];
            if (t < 0 || t >= tokens)
                ok = 0;
            else if (t >= direct) {
                int r = (t - direct) / 4 + 2;
                nraw[nbig++] = r;
                if (r > most)
                    most = r;
            }
        }
        Py_END_ALLOW_THREADS
        if (!ok) {
            PyErr_SetString(PyExc_ValueError, "scatter_tokens: a position or token out of range");
            goto done;
        }
        result = Py_BuildValue("(ni)", nbig, most);
    }
done:
    if (got >= 3 && have_order) PyBuffer_Release(&ov);
    if (got >= 2) PyBuffer_Release(&nv);
    if (got >= 1) PyBuffer_Release(&tv);
    for (Py_ssize_t j = 0; j < got_parts; j++)
        PyBuffer_Release(&pv[j]);
    return result;
}

/* take_pass(v, views, cur, tok, nraw, raw, neg, low, direct, cap, limit, shift) -> (tokens with
 * raw bits, nonzero values): the encoder's side of place_loop. A pass's values of band v (int32,
 * 2-D) in coding order become tokens (tok) of their magnitudes >> shift, the raw bits of those
 * >= direct (nraw, raw, in order), the magnitudes' low shift bits (low, with shift), and the
 * signs of the nonzero values (neg: 1 for negative); cur (PAD-bordered) receives each
 * magnitude >> shift capped at cap. Magnitudes must stay below limit. */
static PyObject *take_pass(PyObject *self, PyObject *args) {
    PyObject *v_obj, *views_obj, *cur_obj, *tok_obj, *nraw_obj, *raw_obj, *neg_obj, *low_obj;
    int direct, cap, shift;
    long long limit;
    if (!PyArg_ParseTuple(args, "OOOOOOOOiiLi", &v_obj, &views_obj, &cur_obj, &tok_obj, &nraw_obj, &raw_obj, &neg_obj,
                          &low_obj, &direct, &cap, &limit, &shift))
        return NULL;
    Py_buffer vv, cv, tv, nv, rv, gv, lv;
    int got = 0;
    PyObject *result = NULL;
    Py_ssize_t views[MAX_VIEWS][3], nviews = 0, total = 0;
    if (get_buffer(v_obj, &vv, 2, 4, 0, "v") < 0) goto done;
    got = 1;
    if (get_buffer(cur_obj, &cv, 2, 4, 1, "cur") < 0) goto done;
    got = 2;
    if (get_buffer(tok_obj, &tv, 1, 4, 1, "tok") < 0) goto done;
    got = 3;
    if (get_buffer(nraw_obj, &nv, 1, 4, 1, "nraw") < 0) goto done;
    got = 4;
    if (get_buffer(raw_obj, &rv, 1, 8, 1, "raw") < 0) goto done;
    got = 5;
    if (get_buffer(neg_obj, &gv, 1, 1, 1, "neg") < 0) goto done;
    got = 6;
    if (get_buffer(low_obj, &lv, 1, 4, 1, "low") < 0) goto done;
    got = 7;
    Py_ssize_t h = vv.shape[0], w = vv.shape[1];
    if (cv.shape[0] != h + 2 * PAD || cv.shape[1] != w + 2 * PAD || !PyTuple_Check(views_obj) ||
        PyTuple_GET_SIZE(views_obj) > MAX_VIEWS || direct < 4 || limit > ((long long)1 << 30) || shift < 0 || shift > 16) {
        PyErr_SetString(PyExc_ValueError, "take_pass: bad arguments");
        goto done;
    }
    nviews = PyTuple_GET_SIZE(views_obj);
    for (Py_ssize_t i = 0; i < nviews; i++) {
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(views_obj, i), "nnn", &views[i][0], &views[i][1], &views[i][2]))
            goto done;
        if (views[i][0] < 0 || views[i][1] < 0 || views[i][2] < 1) {
            PyErr_SetString(PyExc_ValueError, "take_pass: bad view");
            goto done;
        }
        Py_ssize_t ny = views[i][0] < h ? (h - views[i][0] + views[i][2] - 1) / views[i][2] : 0;
        Py_ssize_t nx = views[i][1] < w ? (w - views[i][1] + views[i][2] - 1) / views[i][2] : 0;
        total += ny * nx;
    }
    if (tv.shape[0] != total || nv.shape[0] != total || rv.shape[0] != total || gv.shape[0] != total ||
        tv.strides[0] != 4 || nv.strides[0] != 4 || rv.strides[0] != 8 || gv.strides[0] != 1 ||
        (shift && (lv.shape[0] != total || lv.strides[0] != 4))) {
        PyErr_SetString(PyExc_ValueError, "take_pass: outputs do not match the views");
        goto done;
    }
    {
        int32_t *tok = tv.buf, *nraw = nv.buf;
        uint64_t *raw = rv.buf;
        uint8_t *neg = gv.buf;
        int32_t *low = lv.buf;
        const uint32_t mask = ((uint32_t)1 << shift) - 1;
        Py_ssize_t k = 0, nbig = 0, nnz = 0;
        int ok = 1;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t v = 0; v < nviews && ok; v++) {
            Py_ssize_t y0 = views[v][0], x0 = views[v][1], s = views[v][2];
            for (Py_ssize_t y = y0; y < h && ok; y += s) {
                const char *vrow = (const char *)vv.buf + y * vv.strides[0];
                char *crow = (char *)cv.buf + (y + PAD) * cv.strides[0] + PAD * cv.strides[1];
                for (Py_ssize_t x = x0; x < w; x += s) {
                    int64_t value = *(const int32_t *)(vrow + x * vv.strides[1]);
                    int64_t m64 = value < 0 ? -value : value;
                    if (m64 >= limit) {
                        ok = 0;
                        break;
                    }
                    uint32_t full = (uint32_t)m64, m = full >> shift;
                    if (shift)
                        low[k] = (int32_t)(full & mask);
                    if (m < (uint32_t)direct) {
                        tok[k] = (int32_t)m;
                    } else {
                        int e = bit_length(m) - 1, r = e - 2;
                        tok[k] = direct + 4 * (e - 4) + (int32_t)((m >> r) & 3);
                        nraw[nbig] = r;
                        raw[nbig++] = m & ((1u << r) - 1);
                    }
                    k++;
                    *(int32_t *)(crow + x * cv.strides[1]) = m < (uint32_t)cap ? (int32_t)m : cap;
                    if (full)
                        neg[nnz++] = value < 0;
                }
            }
        }
        Py_END_ALLOW_THREADS
        if (!ok) {
            PyErr_SetString(PyExc_ValueError, "coefficient too large for the lossless coder");
            goto done;
        }
        result = Py_BuildValue("(nn)", nbig, nnz);
    }
done:
    if (got >= 7) PyBuffer_Release(&lv);
    if (got >= 6) PyBuffer_Release(&gv);
    if (got >= 5) PyBuffer_Release(&rv);
    if (got >= 4) PyBuffer_Release(&nv);
    if (got >= 3) PyBuffer_Release(&tv);
    if (got >= 2) PyBuffer_Release(&cv);
    if (got >= 1) PyBuffer_Release(&vv);
    return result;
}

/* decode_pass(dec, models, cur, out, views, weights, sources, lut, scales, signs, pos,
 * scale_model, uniform, sizes, direct, cap, tokens, chunk, shift) -> pos after (-1: the signs ran
 * out): one version 5 pass of a plane (shift: its raw low bits per magnitude), decoded with the range decoder dec: its
 * scale, its activities and buckets, each bucket's tokens (models: one per bucket), their raw
 * bits (uniform symbols of at most chunk bits, lowest first, as bitcoding.code_bits), the low
 * bits, then place_loop. sizes: int32 scratch (a NumPy array) of at least the pass's size. The Python
 * path in lossless_coder._decode_band does the same step by step. */
static PyObject *decode_pass(PyObject *self, PyObject *args) {
    PyObject *dec, *models, *cur_obj, *out_obj, *views_obj, *weights_obj, *sources_obj, *lut_obj, *scales_obj;
    PyObject *signs_obj, *scale_model, *uniform, *sizes_obj;
    Py_ssize_t pos;
    int direct, cap, tokens, chunk, shift;
    if (!PyArg_ParseTuple(args, "OO!OOOOOOOOnOOOiiiii", &dec, &PyList_Type, &models, &cur_obj, &out_obj, &views_obj,
                          &weights_obj, &sources_obj, &lut_obj, &scales_obj, &signs_obj, &pos, &scale_model, &uniform,
                          &sizes_obj, &direct, &cap, &tokens, &chunk, &shift))
        return NULL;
    Py_buffer cv, ov, lv, scv, sv, zv;
    Sources S;
    int got = 0, have_sources = 0;
    int32_t wts[FEATURES];
    Py_ssize_t views[MAX_VIEWS][3], nviews, n;
    int32_t *act = NULL, *order = NULL, *tok = NULL, *nraw = NULL, *raw = NULL, *low = NULL;
    uint8_t *b = NULL;
    int16_t *zeros = NULL;
    int64_t counts[MAX_BUCKETS];
    PyObject *result = NULL;
    if (get_buffer(cur_obj, &cv, 2, 4, 1, "cur") < 0) goto done;
    got = 1;
    if (get_buffer(out_obj, &ov, 2, 4, 1, "out") < 0) goto done;
    got = 2;
    if (get_buffer(lut_obj, &lv, 1, 1, 0, "lut") < 0) goto done;
    got = 3;
    if (get_buffer(scales_obj, &scv, 1, 4, 0, "scales") < 0) goto done;
    got = 4;
    if (PyObject_GetBuffer(signs_obj, &sv, PyBUF_SIMPLE) < 0) goto done;
    got = 5;
    if (get_buffer(sizes_obj, &zv, 1, 4, 1, "sizes") < 0) goto done;
    got = 6;
    Py_ssize_t h = ov.shape[0], w = ov.shape[1], nb = PyList_GET_SIZE(models);
    if (check_cur(&cv, h, w) < 0 || get_weights(weights_obj, wts) < 0 || parse_views(views_obj, h, w, views, &nviews, &n) < 0 ||
        check_lut(&lv, nb) < 0)
        goto done;
    if (zv.shape[0] < n || zv.strides[0] != 4 || scv.strides[0] != 4 || direct < 4 || chunk < 1 || chunk > 30 || pos < 0 ||
        tokens < 1 || shift < 0 || shift > chunk) {
        PyErr_SetString(PyExc_ValueError, "decode_pass: bad arguments");
        goto done;
    }
    if (get_sources(sources_obj, h, w, &S) < 0) goto done;
    have_sources = 1;
    if (!n) {
        result = PyLong_FromSsize_t(pos);
        goto done;
    }
    /* the pass's scale, sent first */
    PyObject *r = PyObject_CallMethod(dec, "decode", "O", scale_model);
    if (!r) goto done;
    Py_ssize_t scale_index = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (scale_index == -1 && PyErr_Occurred()) goto done;
    if (scale_index < 0 || scale_index >= scv.shape[0]) {
        PyErr_SetString(PyExc_ValueError, "decode_pass: scale out of range");
        goto done;
    }
    int32_t scale = ((const int32_t *)scv.buf)[scale_index];
    act = PyMem_RawMalloc(n * sizeof(int32_t));
    order = PyMem_RawMalloc(n * sizeof(int32_t));
    tok = PyMem_RawMalloc(n * sizeof(int32_t));
    nraw = PyMem_RawMalloc(n * sizeof(int32_t));
    raw = PyMem_RawCalloc(n, sizeof(int32_t));
    b = PyMem_RawMalloc(n);
    zeros = PyMem_RawCalloc(w + 2, sizeof(int16_t));
    if (!act || !order || !tok || !nraw || !raw || !b || !zeros) {
        PyErr_NoMemory();
        goto done;
    }
    {
        Plane2 cur = {cv.buf, cv.shape[0], cv.shape[1], cv.strides[0], cv.strides[1]};
        Py_BEGIN_ALLOW_THREADS
        activity_loop(&cur, &S, wts, views, nviews, h, w, zeros, act);
        counting_sort(act, n, scale, lv.buf, lv.shape[0], nb, order, counts, b);
        Py_END_ALLOW_THREADS
    }
    /* each bucket's tokens, back to their positions */
    Py_ssize_t k = 0;
    for (Py_ssize_t j = 0; j < nb; j++) {
        if (!counts[j])
            continue;
        PyObject *part = PyObject_CallMethod(dec, "decode", "On", PyList_GET_ITEM(models, j), (Py_ssize_t)counts[j]);
        if (!part) goto done;
        Py_buffer pv;
        if (get_buffer(part, &pv, 1, 4, 0, "decoded tokens") < 0) {
            Py_DECREF(part);
            goto done;
        }
        int ok = pv.shape[0] == counts[j] && pv.strides[0] == 4;
        if (ok) {
            const int32_t *g = pv.buf;
            for (Py_ssize_t i = 0; i < counts[j]; i++)
                tok[order[k + i]] = g[i];
        }
        PyBuffer_Release(&pv);
        Py_DECREF(part);
        if (!ok) {
            PyErr_SetString(PyExc_ValueError, "decode_pass: the decoder returned the wrong number of tokens");
            goto done;
        }
        k += counts[j];
    }
    /* the raw bits of the tokens that have them, in coding order */
    Py_ssize_t nbig = 0;
    int most = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t t = tok[i];
        if (t < 0 || t >= tokens) {
            PyErr_SetString(PyExc_ValueError, "decode_pass: a token out of range");
            goto done;
        }
        if (t >= direct) {
            int rb = (t - direct) / 4 + 2;
            nraw[nbig++] = rb;
            if (rb > most)
                most = rb;
        }
    }
    int32_t *sizes = zv.buf;
    for (int start = 0; start < most; start += chunk) {
        Py_ssize_t m = 0;
        for (Py_ssize_t j = 0; j < nbig; j++) {
            int width = nraw[j] - start;
            if (width > 0)
                sizes[m++] = (int32_t)1 << (width < chunk ? width : chunk);
        }
        PyObject *view = PySequence_GetSlice(sizes_obj, 0, m);
        if (!view) goto done;
        PyObject *vals = PyObject_CallMethod(dec, "decode", "OO", uniform, view);
        Py_DECREF(view);
        if (!vals) goto done;
        Py_buffer vv;
        if (get_buffer(vals, &vv, 1, 4, 0, "raw bits") < 0) {
            Py_DECREF(vals);
            goto done;
        }
        int ok = vv.shape[0] == m && vv.strides[0] == 4;
        if (ok) {
            const int32_t *g = vv.buf;
            Py_ssize_t q = 0;
            for (Py_ssize_t j = 0; j < nbig; j++)
                if (nraw[j] > start)
                    raw[j] |= g[q++] << start;
        }
        PyBuffer_Release(&vv);
        Py_DECREF(vals);
        if (!ok) {
            PyErr_SetString(PyExc_ValueError, "decode_pass: the decoder returned the wrong number of raw values");
            goto done;
        }
    }
    if (shift) {
        /* the low bits of every magnitude, one uniform symbol each */
        for (Py_ssize_t i = 0; i < n; i++)
            sizes[i] = (int32_t)1 << shift;
        PyObject *view = PySequence_GetSlice(sizes_obj, 0, n);
        if (!view) goto done;
        PyObject *vals = PyObject_CallMethod(dec, "decode", "OO", uniform, view);
        Py_DECREF(view);
        if (!vals) goto done;
        Py_buffer vv;
        if (get_buffer(vals, &vv, 1, 4, 0, "low bits") < 0) {
            Py_DECREF(vals);
            goto done;
        }
        int ok = vv.shape[0] == n && vv.strides[0] == 4;
        low = ok ? PyMem_RawMalloc(n * sizeof(int32_t)) : NULL;
        if (low)
            memcpy(low, vv.buf, n * sizeof(int32_t));
        PyBuffer_Release(&vv);
        Py_DECREF(vals);
        if (!ok) {
            PyErr_SetString(PyExc_ValueError, "decode_pass: the decoder returned the wrong number of low bits");
            goto done;
        }
        if (!low) {
            PyErr_NoMemory();
            goto done;
        }
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = place_loop(tok, raw, nbig, low, shift, &cv, &ov, views, nviews, sv.buf, 8 * sv.len, &pos, direct, cap);
    Py_END_ALLOW_THREADS
    if (status == -2) {
        PyErr_SetString(PyExc_ValueError, "decode_pass: raw bits do not match the tokens");
        goto done;
    }
    result = PyLong_FromSsize_t(pos);
done:
    PyMem_RawFree(act);
    PyMem_RawFree(order);
    PyMem_RawFree(tok);
    PyMem_RawFree(nraw);
    PyMem_RawFree(raw);
    PyMem_RawFree(low);
    PyMem_RawFree(b);
    PyMem_RawFree(zeros);
    if (have_sources) release_sources(&S);
    if (got >= 6) PyBuffer_Release(&zv);
    if (got >= 5) PyBuffer_Release(&sv);
    if (got >= 4) PyBuffer_Release(&scv);
    if (got >= 3) PyBuffer_Release(&lv);
    if (got >= 2) PyBuffer_Release(&ov);
    if (got >= 1) PyBuffer_Release(&cv);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_pass", decode_pass, METH_VARARGS, "One version 5 pass decoded and put in place; the sign bit after."},
    {"scatter_tokens", scatter_tokens, METH_VARARGS, "A pass's tokens back in coding order; raw bit counts."},
    {"take_pass", take_pass, METH_VARARGS, "A pass's values as tokens, raw bits, signs; the context updated."},
    {"lift", lift, METH_VARARGS, "One reversible lifting transform along an axis, forward or inverse."},
    {"activity", activity, METH_VARARGS, "A pass's context activities (see lossless_coder._Band.activity)."},
    {"bucket_order", bucket_order, METH_VARARGS, "Buckets of scaled activities, positions grouped by bucket."},
    {"scale_costs", scale_costs, METH_VARARGS, "Fixed-point bits of a sample under each activity scale."},
    {"apply_signs", apply_signs, METH_VARARGS, "Negate nonzero values by raw sign bits; the bit position after."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_lossless_loops", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__lossless_loops(void) { return PyModule_Create(&module); }
