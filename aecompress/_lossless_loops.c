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

static inline int32_t at16(const Plane2 *p, Py_ssize_t y, Py_ssize_t x) {
    return *(const int16_t *)(p->buf + y * p->s0 + x * p->s1);
}

static inline int32_t at32(const Plane2 *p, Py_ssize_t y, Py_ssize_t x) {
    return *(const int32_t *)(p->buf + y * p->s0 + x * p->s1);
}

/* activity(out, cur, views, weights, sources): pass activities in coding order into out (int32,
 * 1-D). cur: the band's decoded magnitudes (int32, PAD-bordered), views: ((y, x, s), ...),
 * weights: 10 int32, sources: 7 int16 2-D arrays or None (parent and its neighbours at half
 * resolution, zero beyond their edge; the rest at the band's shape). */
static PyObject *activity(PyObject *self, PyObject *args) {
    PyObject *out_obj, *cur_obj, *views_obj, *weights_obj, *sources_obj;
    if (!PyArg_ParseTuple(args, "OOOOO", &out_obj, &cur_obj, &views_obj, &weights_obj, &sources_obj))
        return NULL;
    Py_buffer out_v, cur_v, w_v, src_v[SOURCES];
    int have[SOURCES] = {0};
    Plane2 src[SOURCES];
    Py_ssize_t views[MAX_VIEWS][3];
    Py_ssize_t nviews = 0, total = 0;
    PyObject *result = NULL;
    int got_out = 0, got_cur = 0, got_w = 0;

    if (get_buffer(out_obj, &out_v, 1, 4, 1, "out") < 0) goto done;
    got_out = 1;
    if (get_buffer(cur_obj, &cur_v, 2, 4, 0, "cur") < 0) goto done;
    got_cur = 1;
    if (get_buffer(weights_obj, &w_v, 1, 4, 0, "weights") < 0) goto done;
    got_w = 1;
    if (w_v.shape[0] != FEATURES || out_v.strides[0] != 4) {
        PyErr_SetString(PyExc_ValueError, "activity: bad weights or output");
        goto done;
    }
    if (!PyTuple_Check(sources_obj) || PyTuple_GET_SIZE(sources_obj) != SOURCES || !PyTuple_Check(views_obj) ||
        PyTuple_GET_SIZE(views_obj) > MAX_VIEWS) {
        PyErr_SetString(PyExc_ValueError, "activity: bad sources or views");
        goto done;
    }
    Py_ssize_t h = cur_v.shape[0] - 2 * PAD, w = cur_v.shape[1] - 2 * PAD;
    nviews = PyTuple_GET_SIZE(views_obj);
    for (Py_ssize_t i = 0; i < nviews; i++) {
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(views_obj, i), "nnn", &views[i][0], &views[i][1], &views[i][2]))
            goto done;
        if (views[i][0] < 0 || views[i][1] < 0 || views[i][2] < 1) {
            PyErr_SetString(PyExc_ValueError, "activity: bad view");
            goto done;
        }
        Py_ssize_t ny = views[i][0] < h ? (h - views[i][0] + views[i][2] - 1) / views[i][2] : 0;
        Py_ssize_t nx = views[i][1] < w ? (w - views[i][1] + views[i][2] - 1) / views[i][2] : 0;
        total += ny * nx;
    }
    if (total != out_v.shape[0]) {
        PyErr_SetString(PyExc_ValueError, "activity: output size does not match the views");
        goto done;
    }
    for (int i = 0; i < SOURCES; i++) {
        PyObject *o = PyTuple_GET_ITEM(sources_obj, i);
        if (o == Py_None)
            continue;
        if (get_buffer(o, &src_v[i], 2, 2, 0, "source") < 0) goto done;
        have[i] = 1;
        src[i] = (Plane2){src_v[i].buf, src_v[i].shape[0], src_v[i].shape[1], src_v[i].strides[0], src_v[i].strides[1]};
        if (i >= 2 && (src[i].rows != h || src[i].cols != w)) {
            PyErr_SetString(PyExc_ValueError, "activity: a source is not the band's shape");
            goto done;
        }
    }
    {
        const int32_t *wt = (const int32_t *)w_v.buf;
        int32_t wts[FEATURES];
        for (int i = 0; i < FEATURES; i++)
            wts[i] = *(const int32_t *)((const char *)wt + i * w_v.strides[0]);
        Plane2 cur = {cur_v.buf, cur_v.shape[0], cur_v.shape[1], cur_v.strides[0], cur_v.strides[1]};
        int32_t *out = (int32_t *)out_v.buf;
        /* which feature each source feeds */
        static const int feature_of[SOURCES] = {0, 1, 2, 3, 4, 8, 9};
        Py_BEGIN_ALLOW_THREADS
        Py_ssize_t k = 0;
        for (Py_ssize_t v = 0; v < nviews; v++) {
            Py_ssize_t y0 = views[v][0], x0 = views[v][1], s = views[v][2];
            for (Py_ssize_t y = y0; y < h; y += s) {
                for (Py_ssize_t x = x0; x < w; x += s) {
                    int64_t a = 0;
                    for (int i = 0; i < SOURCES; i++) {
                        int32_t wi = wts[feature_of[i]];
                        if (!have[i] || !wi)
                            continue;
                        if (i < 2) {
                            Py_ssize_t py = y >> 1, px = x >> 1;
                            if (py < src[i].rows && px < src[i].cols)
                                a += (int64_t)wi * at16(&src[i], py, px);
                        } else {
                            a += (int64_t)wi * at16(&src[i], y, x);
                        }
                    }
                    Py_ssize_t cy = y + PAD, cx = x + PAD;
                    if (wts[5])
                        a += (int64_t)wts[5] * (at32(&cur, cy - 1, cx) + at32(&cur, cy + 1, cx) + at32(&cur, cy, cx - 1) +
                                                at32(&cur, cy, cx + 1));
                    if (wts[6])
                        a += (int64_t)wts[6] * (at32(&cur, cy - 1, cx - 1) + at32(&cur, cy - 1, cx + 1) +
                                                at32(&cur, cy + 1, cx - 1) + at32(&cur, cy + 1, cx + 1));
                    if (wts[7])
                        a += (int64_t)wts[7] * (at32(&cur, cy - 2, cx) + at32(&cur, cy + 2, cx) + at32(&cur, cy, cx - 2) +
                                                at32(&cur, cy, cx + 2) + at32(&cur, cy - 2, cx - 2) +
                                                at32(&cur, cy - 2, cx + 2) + at32(&cur, cy + 2, cx - 2) +
                                                at32(&cur, cy + 2, cx + 2));
                    out[k++] = (int32_t)a;
                }
            }
        }
        Py_END_ALLOW_THREADS
    }
    result = Py_NewRef(Py_None);
done:
    for (int i = 0; i < SOURCES; i++)
        if (have[i])
            PyBuffer_Release(&src_v[i]);
    if (got_w) PyBuffer_Release(&w_v);
    if (got_cur) PyBuffer_Release(&cur_v);
    if (got_out) PyBuffer_Release(&out_v);
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

/* bucket_order(act, scale, lut, order, counts): each activity scaled by scale / 16 (rounded as
 * the NumPy path does) and looked up in lut; order (int32, len(act)) receives the positions
 * grouped by bucket, ascending, in coding order within each (a stable counting sort), counts
 * (int64, one per bucket) how many each got. */
static PyObject *bucket_order(PyObject *self, PyObject *args) {
    PyObject *act_obj, *lut_obj, *order_obj, *counts_obj;
    int scale;
    if (!PyArg_ParseTuple(args, "OiOOO", &act_obj, &scale, &lut_obj, &order_obj, &counts_obj))
        return NULL;
    Py_buffer act_v, lut_v, order_v, counts_v;
    int got = 0;
    PyObject *result = NULL;
    if (get_buffer(act_obj, &act_v, 1, 4, 0, "act") < 0) goto done;
    got = 1;
    if (get_buffer(lut_obj, &lut_v, 1, 1, 0, "lut") < 0) goto done;
    got = 2;
    if (get_buffer(order_obj, &order_v, 1, 4, 1, "order") < 0) goto done;
    got = 3;
    if (get_buffer(counts_obj, &counts_v, 1, 8, 1, "counts") < 0) goto done;
    got = 4;
    Py_ssize_t n = act_v.shape[0], nb = counts_v.shape[0], lut_size = lut_v.shape[0];
    if (order_v.shape[0] != n || order_v.strides[0] != 4 || act_v.strides[0] != 4 || lut_v.strides[0] != 1 ||
        counts_v.strides[0] != 8 || nb > MAX_BUCKETS || lut_size < 1) {
        PyErr_SetString(PyExc_ValueError, "bucket_order: bad arguments");
        goto done;
    }
    const uint8_t *lut = (const uint8_t *)lut_v.buf;
    for (Py_ssize_t i = 0; i < lut_size; i++)
        if (lut[i] >= nb) {
            PyErr_SetString(PyExc_ValueError, "bucket_order: a bucket beyond the counts");
            goto done;
        }
    uint8_t *b = PyMem_RawMalloc(n ? n : 1);
    if (!b) {
        PyErr_NoMemory();
        goto done;
    }
    {
        const int32_t *act = (const int32_t *)act_v.buf;
        int32_t *order = (int32_t *)order_v.buf;
        int64_t *counts = (int64_t *)counts_v.buf;
        Py_BEGIN_ALLOW_THREADS
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
        Py_END_ALLOW_THREADS
    }
    PyMem_RawFree(b);
    result = Py_NewRef(Py_None);
done:
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
 * must agree on everything) */
#define WRAP(e) ((int32_t)(uint32_t)(e))
#define U(v) ((uint32_t)(v))

/* One lifting transform along an axis of 2-D int32 arrays: signal index i, line index b.
 * S(i, b) / D(i, b) address the even / odd samples. The loops run over b innermost where the
 * lines sit side by side in memory (axis 0), over i innermost otherwise. */
typedef struct {
    char *base;
    Py_ssize_t si, sb; /* byte strides along the signal and across lines */
} Lines;

#define AT(l, i, b) (*(int32_t *)((l).base + (i) * (l).si + (b) * (l).sb))

static void predict(Lines s, Lines d, Py_ssize_t nd, Py_ssize_t nb, const Py_ssize_t *sm, int kernel, int sign,
                    int b_inner) {
    /* d[i] -= (sign 1) or += (sign -1) the prediction from s; sm[k] = s-index of position 2(k - 1) */
#define PRED(i, b)                                                                                                  \
    (kernel == 0 ? WRAP(U(AT(s, sm[(i) + 1], b)) + U(AT(s, sm[(i) + 2], b))) >> 1                                  \
                 : WRAP(U(9) * (U(AT(s, sm[(i) + 1], b)) + U(AT(s, sm[(i) + 2], b))) -                               \
                        (U(AT(s, sm[(i)], b)) + U(AT(s, sm[(i) + 3], b))) + U(8)) >>                                 \
                       4)
    if (b_inner) {
        for (Py_ssize_t i = 0; i < nd; i++)
            for (Py_ssize_t b = 0; b < nb; b++)
                AT(d, i, b) = WRAP(sign > 0 ? U(AT(d, i, b)) - U(PRED(i, b)) : U(AT(d, i, b)) + U(PRED(i, b)));
    } else {
        for (Py_ssize_t b = 0; b < nb; b++)
            for (Py_ssize_t i = 0; i < nd; i++)
                AT(d, i, b) = WRAP(sign > 0 ? U(AT(d, i, b)) - U(PRED(i, b)) : U(AT(d, i, b)) + U(PRED(i, b)));
    }
#undef PRED
}

static void update(Lines s, Lines d, Py_ssize_t ns, Py_ssize_t nb, const Py_ssize_t *dm, int kernel, int sign,
                   int b_inner) {
    /* s[i] += (sign 1) or -= (sign -1) the update from d; dm[k] = d-index of position 2(k - 2) + 1 */
#define UPD(i, b)                                                                                                   \
    (kernel != 2 ? WRAP(U(AT(d, dm[(i) + 1], b)) + U(AT(d, dm[(i) + 2], b)) + U(2)) >> 2                           \
                 : WRAP(U(9) * (U(AT(d, dm[(i) + 1], b)) + U(AT(d, dm[(i) + 2], b))) -                               \
                        (U(AT(d, dm[(i)], b)) + U(AT(d, dm[(i) + 3], b))) + U(16)) >>                                \
                       5)
    if (b_inner) {
        for (Py_ssize_t i = 0; i < ns; i++)
            for (Py_ssize_t b = 0; b < nb; b++)
                AT(s, i, b) = WRAP(sign > 0 ? U(AT(s, i, b)) + U(UPD(i, b)) : U(AT(s, i, b)) - U(UPD(i, b)));
    } else {
        for (Py_ssize_t b = 0; b < nb; b++)
            for (Py_ssize_t i = 0; i < ns; i++)
                AT(s, i, b) = WRAP(sign > 0 ? U(AT(s, i, b)) + U(UPD(i, b)) : U(AT(s, i, b)) - U(UPD(i, b)));
    }
#undef UPD
}

static Lines lines_of(Py_buffer *v, int axis, Py_ssize_t step, Py_ssize_t offset) {
    Py_ssize_t si = v->strides[axis] * step, sb = v->strides[1 - axis];
    return (Lines){(char *)v->buf + offset * v->strides[axis], si, sb};
}

/* lift(x, s, d, axis, kernel, inverse): forward (x -> even samples s and odd samples d, each
 * lifted) or inverse (s, d -> x) along axis of 2-D int32 arrays; kernel indexes
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
    if (get_buffer(x_obj, &xv, 2, 4, inverse, "x") < 0) goto done;
    got = 1;
    if (get_buffer(s_obj, &sv, 2, 4, !inverse, "s") < 0) goto done;
    got = 2;
    if (get_buffer(d_obj, &dv, 2, 4, !inverse, "d") < 0) goto done;
    got = 3;
    Py_ssize_t n = xv.shape[axis], nb = xv.shape[1 - axis], ns = (n + 1) / 2, nd = n / 2;
    if (sv.shape[axis] != ns || dv.shape[axis] != nd || sv.shape[1 - axis] != nb || dv.shape[1 - axis] != nb) {
        PyErr_SetString(PyExc_ValueError, "lift: band shapes do not match");
        goto done;
    }
    sm = PyMem_RawMalloc((nd + 3) * sizeof(Py_ssize_t));
    dm = PyMem_RawMalloc((ns + 3) * sizeof(Py_ssize_t));
    if (!sm || !dm) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < nd + 3; k++)
        sm[k] = mirror(n, 2 * (k - 1));
    for (Py_ssize_t k = 0; k < ns + 3; k++)
        dm[k] = mirror(n, 2 * (k - 2) + 1);
    {
        Lines xe = lines_of(&xv, axis, 2, 0), xo = lines_of(&xv, axis, 2, 1);
        Lines s = lines_of(&sv, axis, 1, 0), d = lines_of(&dv, axis, 1, 0);
        int b_inner = axis == 0;
        Py_BEGIN_ALLOW_THREADS
        if (!inverse) {
            for (Py_ssize_t b = 0; b < nb; b++) {
                for (Py_ssize_t i = 0; i < ns; i++)
                    AT(s, i, b) = AT(xe, i, b);
                for (Py_ssize_t i = 0; i < nd; i++)
                    AT(d, i, b) = AT(xo, i, b);
            }
            if (nd) {
                predict(s, d, nd, nb, sm, kernel, 1, b_inner);
                update(s, d, ns, nb, dm, kernel, 1, b_inner);
            }
        } else {
            /* undo in place on x's even and odd samples, after copying s and d there */
            for (Py_ssize_t b = 0; b < nb; b++) {
                for (Py_ssize_t i = 0; i < ns; i++)
                    AT(xe, i, b) = AT(s, i, b);
                for (Py_ssize_t i = 0; i < nd; i++)
                    AT(xo, i, b) = AT(d, i, b);
            }
            if (nd) {
                update(xe, xo, ns, nb, dm, kernel, -1, b_inner);
                predict(xe, xo, nd, nb, sm, kernel, -1, b_inner);
            }
        }
        Py_END_ALLOW_THREADS
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_RawFree(sm);
    PyMem_RawFree(dm);
    if (got >= 3) PyBuffer_Release(&dv);
    if (got >= 2) PyBuffer_Release(&sv);
    if (got >= 1) PyBuffer_Release(&xv);
    return result;
}

static PyMethodDef methods[] = {
    {"lift", lift, METH_VARARGS, "One reversible lifting transform along an axis, forward or inverse."},
    {"activity", activity, METH_VARARGS, "A pass's context activities (see lossless_coder._Band.activity)."},
    {"bucket_order", bucket_order, METH_VARARGS, "Buckets of scaled activities, positions grouped by bucket."},
    {"scale_costs", scale_costs, METH_VARARGS, "Fixed-point bits of a sample under each activity scale."},
    {"apply_signs", apply_signs, METH_VARARGS, "Negate nonzero values by raw sign bits; the bit position after."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_lossless_loops", NULL, -1, methods};

PyMODINIT_FUNC PyInit__lossless_loops(void) { return PyModule_Create(&module); }
