/* Contexts: a pass's activities (lossless_coder._Band.activity), their buckets under a scale and
 * the positions grouped by bucket, and the encoder's search for the scale. */
#include "loops.h"

/* which feature each source feeds */
static const int feature_of[SOURCES] = {0, 1, 2, 3, 4, 8, 9};

/* The context sources of a band (a tuple of SOURCES int16 arrays or None, rows contiguous): the
 * parent and its neighbours' sums at half resolution (zero beyond their edges), the siblings,
 * luma, Cb and the low band's steps across and along at the band's shape. */
int hold_sources(Held *h, PyObject *obj, Py_ssize_t rows, Py_ssize_t cols, Sources *S) {
    memset(S->have, 0, sizeof(S->have));
    if (!PyTuple_Check(obj) || PyTuple_GET_SIZE(obj) != SOURCES) {
        PyErr_SetString(PyExc_ValueError, "sources: a tuple of seven arrays or None");
        return -1;
    }
    for (int i = 0; i < SOURCES; i++) {
        PyObject *o = PyTuple_GET_ITEM(obj, i);
        if (o == Py_None)
            continue;
        Py_buffer *v = hold(h, o, 2, 2, 0, "source");
        if (!v)
            return -1;
        if ((i >= 2 && (v->shape[0] != rows || v->shape[1] != cols)) || v->strides[1] != 2) {
            PyErr_SetString(PyExc_ValueError, "sources: one is not the band's shape or not contiguous in rows");
            return -1;
        }
        S->have[i] = 1;
        S->plane[i] = (Rows){v->buf, v->shape[0], v->shape[1], v->strides[0]};
    }
    return 0;
}

/* The activities of a pass in coding order: cur holds the band's decoded magnitudes (int32,
 * PAD-bordered, rows contiguous), zeros at least w + 2 zeros. */
void activity_loop(const Py_buffer *cur, const Sources *S, const int32_t wts[FEATURES], Py_ssize_t views[MAX_VIEWS][3],
                   Py_ssize_t nviews, Py_ssize_t h, Py_ssize_t w, const int16_t *zeros, int32_t *out) {
    Py_ssize_t k = 0, r = cur->strides[0];
    for (Py_ssize_t v = 0; v < nviews; v++) {
        Py_ssize_t y0 = views[v][0], x0 = views[v][1], s = views[v][2];
        for (Py_ssize_t y = y0; y < h; y += s) {
            /* this row of each source, a row of zeros where a source is absent or weighs nothing
             * (so the inner loop is the same fixed sum everywhere); the parent's (row y / 2) are
             * zero past their edges */
            const int16_t *row[SOURCES];
            Py_ssize_t limit[2];
            int32_t wt[SOURCES];
            for (int i = 0; i < SOURCES; i++) {
                int32_t wi = wts[feature_of[i]];
                Py_ssize_t ry = i < 2 ? y >> 1 : y;
                int use = S->have[i] && wi && ry < S->plane[i].rows;
                row[i] = use ? (const int16_t *)(S->plane[i].buf + ry * S->plane[i].s0) : zeros;
                wt[i] = use ? wi : 0;
                if (i < 2)
                    limit[i] = use ? 2 * S->plane[i].cols : w; /* x < limit: x / 2 inside */
            }
            const char *base = (const char *)cur->buf + (y + PAD) * r;
            const int32_t *c0 = (const int32_t *)base + PAD;
            const int32_t *cm1 = (const int32_t *)(base - r) + PAD, *cp1 = (const int32_t *)(base + r) + PAD;
            const int32_t *cm2 = (const int32_t *)(base - 2 * r) + PAD, *cp2 = (const int32_t *)(base + 2 * r) + PAD;
            const int32_t w5 = wts[5], w6 = wts[6], w7 = wts[7];
            const Py_ssize_t both = limit[0] < limit[1] ? limit[0] : limit[1];
            for (Py_ssize_t x = x0; x < w; x += s) {
                int32_t a = wt[2] * row[2][x] + wt[3] * row[3][x] + wt[4] * row[4][x] + wt[5] * row[5][x] +
                            wt[6] * row[6][x];
                Py_ssize_t hx = x >> 1;
                if (x < both)
                    a += wt[0] * row[0][hx] + wt[1] * row[1][hx];
                else {
                    if (x < limit[0])
                        a += wt[0] * row[0][hx];
                    if (x < limit[1])
                        a += wt[1] * row[1][hx];
                }
                a += w5 * (cm1[x] + cp1[x] + c0[x - 1] + c0[x + 1]);
                a += w6 * (cm1[x - 1] + cm1[x + 1] + cp1[x - 1] + cp1[x + 1]);
                a += w7 * (cm2[x] + cp2[x] + c0[x - 2] + c0[x + 2] + cm2[x - 2] + cm2[x + 2] + cp2[x - 2] + cp2[x + 2]);
                out[k++] = a;
            }
        }
    }
}

/* activity(out, cur, views, weights, sources): pass activities in coding order into out (int32,
 * 1-D). cur: the band's decoded magnitudes (int32, PAD-bordered), views: ((y, x, s), ...),
 * weights: 10 int32, sources: see hold_sources. */
PyObject *activity(PyObject *self, PyObject *args) {
    PyObject *out_obj, *cur_obj, *views_obj, *weights_obj, *sources_obj;
    if (!PyArg_ParseTuple(args, "OOOOO", &out_obj, &cur_obj, &views_obj, &weights_obj, &sources_obj))
        return NULL;
    Held held = {.n = 0};
    Sources S;
    Py_ssize_t views[MAX_VIEWS][3], nviews, total;
    int32_t wts[FEATURES];
    PyObject *result = NULL;
    int16_t *zeros = NULL; /* the row of an absent source */
    Py_buffer *out = hold(&held, out_obj, 1, 4, 1, "out"), *cur = out ? hold(&held, cur_obj, 2, 4, 0, "cur") : NULL;
    if (!cur)
        goto done;
    Py_ssize_t h = cur->shape[0] - 2 * PAD, w = cur->shape[1] - 2 * PAD;
    if (check_cur(cur, h, w) < 0 || get_weights(weights_obj, wts) < 0 ||
        parse_views(views_obj, h, w, views, &nviews, &total) < 0 || hold_sources(&held, sources_obj, h, w, &S) < 0)
        goto done;
    if (total != out->shape[0] || out->strides[0] != 4) {
        PyErr_SetString(PyExc_ValueError, "activity: output size does not match the views");
        goto done;
    }
    zeros = PyMem_RawCalloc(w + 2, sizeof(int16_t));
    if (!zeros) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    activity_loop(cur, &S, wts, views, nviews, h, w, zeros, (int32_t *)out->buf);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyMem_RawFree(zeros);
    release_held(&held);
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

/* Buckets of activities scaled by scale / 16 (rounded as lossless_coder._scaled) and looked up
 * in lut, then a stable counting sort: order receives the positions grouped by bucket,
 * ascending, in coding order within each; counts (nb) how many each got. scratch: n bytes. */
void counting_sort(const int32_t *act, Py_ssize_t n, int32_t scale, const uint8_t *lut, Py_ssize_t lut_size,
                   Py_ssize_t nb, int32_t *order, int64_t *counts, uint8_t *scratch) {
    int64_t start[MAX_BUCKETS];
    memset(counts, 0, nb * sizeof(int64_t));
    for (Py_ssize_t i = 0; i < n; i++) {
        scratch[i] = bucket_of(act[i], scale, lut, lut_size);
        counts[scratch[i]]++;
    }
    int64_t s = 0;
    for (Py_ssize_t j = 0; j < nb; j++) {
        start[j] = s;
        s += counts[j];
    }
    for (Py_ssize_t i = 0; i < n; i++)
        order[start[scratch[i]]++] = (int32_t)i;
}

/* lut: uint8, contiguous, every bucket below nb */
int check_lut(const Py_buffer *lut, Py_ssize_t nb) {
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

/* bucket_order(act, scale, lut, order, counts) -> [(bucket, start, end), ...]: counting_sort
 * of act (int32) into order (int32, len(act)) and counts (int64, one per bucket); the list
 * gives the runs of order that each bucket present holds. */
PyObject *bucket_order(PyObject *self, PyObject *args) {
    PyObject *act_obj, *lut_obj, *order_obj, *counts_obj;
    int scale;
    if (!PyArg_ParseTuple(args, "OiOOO", &act_obj, &scale, &lut_obj, &order_obj, &counts_obj))
        return NULL;
    Held held = {.n = 0};
    PyObject *result = NULL;
    uint8_t *scratch = NULL;
    Py_buffer *act = hold(&held, act_obj, 1, 4, 0, "act");
    Py_buffer *lut = act ? hold(&held, lut_obj, 1, 1, 0, "lut") : NULL;
    Py_buffer *order = lut ? hold(&held, order_obj, 1, 4, 1, "order") : NULL;
    Py_buffer *cv = order ? hold(&held, counts_obj, 1, 8, 1, "counts") : NULL;
    if (!cv)
        goto done;
    Py_ssize_t n = act->shape[0], nb = cv->shape[0];
    if (order->shape[0] != n || order->strides[0] != 4 || act->strides[0] != 4 || cv->strides[0] != 8) {
        PyErr_SetString(PyExc_ValueError, "bucket_order: bad arguments");
        goto done;
    }
    if (check_lut(lut, nb) < 0)
        goto done;
    scratch = PyMem_RawMalloc(n ? n : 1);
    if (!scratch) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *counts = cv->buf;
    Py_BEGIN_ALLOW_THREADS
    counting_sort(act->buf, n, scale, lut->buf, lut->shape[0], nb, order->buf, counts, scratch);
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
    PyMem_RawFree(scratch);
    release_held(&held);
    return result;
}

/* scale_costs(act, tok, step, scales, lut, lengths, costs): for each scale, the fixed-point bits
 * of tok[::step] coded with the buckets of act[::step] under that scale. lengths: int64
 * (buckets, tokens); costs: int64, one per scale. */
PyObject *scale_costs(PyObject *self, PyObject *args) {
    PyObject *act_obj, *tok_obj, *scales_obj, *lut_obj, *len_obj, *costs_obj;
    Py_ssize_t step;
    if (!PyArg_ParseTuple(args, "OOnOOOO", &act_obj, &tok_obj, &step, &scales_obj, &lut_obj, &len_obj, &costs_obj))
        return NULL;
    Held held = {.n = 0};
    PyObject *result = NULL;
    Py_buffer *av = hold(&held, act_obj, 1, 4, 0, "act");
    Py_buffer *tv = av ? hold(&held, tok_obj, 1, 4, 0, "tok") : NULL;
    Py_buffer *sv = tv ? hold(&held, scales_obj, 1, 4, 0, "scales") : NULL;
    Py_buffer *lv = sv ? hold(&held, lut_obj, 1, 1, 0, "lut") : NULL;
    Py_buffer *len = lv ? hold(&held, len_obj, 2, 8, 0, "lengths") : NULL;
    Py_buffer *cv = len ? hold(&held, costs_obj, 1, 8, 1, "costs") : NULL;
    if (!cv)
        goto done;
    Py_ssize_t n = av->shape[0], ns = sv->shape[0], nb = len->shape[0], nt = len->shape[1];
    if (tv->shape[0] != n || step < 1 || cv->shape[0] != ns || av->strides[0] != 4 || tv->strides[0] != 4 ||
        sv->strides[0] != 4 || cv->strides[0] != 8 || len->strides[1] != 8 || len->strides[0] != 8 * nt) {
        PyErr_SetString(PyExc_ValueError, "scale_costs: bad arguments");
        goto done;
    }
    if (check_lut(lv, nb) < 0)
        goto done;
    const int32_t *tok = tv->buf;
    for (Py_ssize_t i = 0; i < n; i += step)
        if (tok[i] < 0 || tok[i] >= nt) {
            PyErr_SetString(PyExc_ValueError, "scale_costs: a token beyond the lengths");
            goto done;
        }
    const int32_t *act = av->buf, *scales = sv->buf;
    const int64_t *lengths = len->buf;
    const uint8_t *lut = lv->buf;
    Py_ssize_t lut_size = lv->shape[0];
    int64_t *costs = cv->buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < ns; j++) {
        int64_t c = 0;
        for (Py_ssize_t i = 0; i < n; i += step)
            c += lengths[bucket_of(act[i], scales[j], lut, lut_size) * nt + tok[i]];
        costs[j] = c;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release_held(&held);
    return result;
}
