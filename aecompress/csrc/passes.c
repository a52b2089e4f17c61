/* A band-pass's values <-> tokens, raw bits and signs (lossless_coder._encode_band and
 * _decode_band): the encoder's take_pass, the decoder's decode_pass (the whole pass, the range
 * decoder called from here) and scatter_tokens (version 4 files and the step-by-step path). */
#include "loops.h"

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

/* A decoded pass put in place: tokens become magnitudes (below direct the token itself, else
 * its two bits below the leading one and raw's next value below them), cur receives each capped
 * at cap, out the value (with shift, the magnitude shifted up and its low bits from low below
 * it), negated where its sign bit (from bit *pos of signs, least significant first) is set.
 * Returns 0; -1 when the signs run out (*pos = -1), -2 when raw does not hold exactly the raw
 * values the tokens need. */
static int place_loop(const int32_t *tok, const int32_t *raw, Py_ssize_t nraw_values, const int32_t *low, int shift,
                      const Py_buffer *cv, const Py_buffer *ov, Py_ssize_t views[MAX_VIEWS][3], Py_ssize_t nviews,
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

/* scatter_tokens(parts, order, tok, nraw, direct, tokens) -> (tokens with raw bits, most raw
 * bits of one): the decoder's tokens, decoded bucket by bucket (parts: a list of int32 arrays,
 * one run of order each), put back in coding order (tok[order[k]] = the k-th of them; order
 * None: as they come); nraw receives, in coding order, the number of raw bits of each token >=
 * direct. */
PyObject *scatter_tokens(PyObject *self, PyObject *args) {
    PyObject *parts_obj, *o_obj, *t_obj, *n_obj;
    int direct, tokens;
    if (!PyArg_ParseTuple(args, "O!OOOii", &PyList_Type, &parts_obj, &o_obj, &t_obj, &n_obj, &direct, &tokens))
        return NULL;
    Py_ssize_t nparts = PyList_GET_SIZE(parts_obj), n = 0;
    if (nparts > HELD_MAX - 3) {
        PyErr_SetString(PyExc_ValueError, "scatter_tokens: too many parts");
        return NULL;
    }
    Held held = {.n = 0};
    PyObject *result = NULL;
    const int32_t *part[HELD_MAX];
    Py_ssize_t part_size[HELD_MAX];
    for (Py_ssize_t j = 0; j < nparts; j++) {
        Py_buffer *v = hold(&held, PyList_GET_ITEM(parts_obj, j), 1, 4, 0, "part");
        if (!v)
            goto done;
        if (v->strides[0] != 4) {
            PyErr_SetString(PyExc_ValueError, "scatter_tokens: a part is not contiguous");
            goto done;
        }
        part[j] = v->buf;
        part_size[j] = v->shape[0];
        n += v->shape[0];
    }
    Py_buffer *tv = hold(&held, t_obj, 1, 4, 1, "tok");
    Py_buffer *nv = tv ? hold(&held, n_obj, 1, 4, 1, "nraw") : NULL;
    Py_buffer *ov = nv && o_obj != Py_None ? hold(&held, o_obj, 1, 4, 0, "order") : NULL;
    if (!nv || (o_obj != Py_None && !ov))
        goto done;
    if (tv->shape[0] != n || nv->shape[0] != n || (ov && (ov->shape[0] != n || ov->strides[0] != 4)) ||
        tv->strides[0] != 4 || nv->strides[0] != 4 || direct < 4) {
        PyErr_SetString(PyExc_ValueError, "scatter_tokens: bad arguments");
        goto done;
    }
    const int32_t *order = ov ? ov->buf : NULL;
    int32_t *tok = tv->buf, *nraw = nv->buf;
    Py_ssize_t nbig = 0, k = 0;
    int ok = 1, most = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < nparts && ok; j++) {
        const int32_t *g = part[j];
        if (order) {
            for (Py_ssize_t i = 0; i < part_size[j]; i++, k++) {
                if (order[k] < 0 || order[k] >= n) {
                    ok = 0;
                    break;
                }
                tok[order[k]] = g[i];
            }
        } else {
            memcpy(tok + k, g, part_size[j] * sizeof(int32_t));
            k += part_size[j];
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
done:
    release_held(&held);
    return result;
}

/* take_pass(v, views, cur, tok, nraw, raw, neg, low, direct, cap, limit, shift) -> (tokens with
 * raw bits, nonzero values): the encoder's side of place_loop. A pass's values of band v (int32,
 * 2-D) in coding order become tokens (tok) of their magnitudes >> shift, the raw bits of those
 * >= direct (nraw, raw, in order), the magnitudes' low shift bits (low, with shift), and the
 * signs of the nonzero values (neg: 1 for negative); cur (PAD-bordered) receives each
 * magnitude >> shift capped at cap. Magnitudes must stay below limit. */
PyObject *take_pass(PyObject *self, PyObject *args) {
    PyObject *v_obj, *views_obj, *cur_obj, *tok_obj, *nraw_obj, *raw_obj, *neg_obj, *low_obj;
    int direct, cap, shift;
    long long limit;
    if (!PyArg_ParseTuple(args, "OOOOOOOOiiLi", &v_obj, &views_obj, &cur_obj, &tok_obj, &nraw_obj, &raw_obj, &neg_obj,
                          &low_obj, &direct, &cap, &limit, &shift))
        return NULL;
    Held held = {.n = 0};
    PyObject *result = NULL;
    Py_ssize_t views[MAX_VIEWS][3], nviews, total;
    Py_buffer *vv = hold(&held, v_obj, 2, 4, 0, "v");
    Py_buffer *cv = vv ? hold(&held, cur_obj, 2, 4, 1, "cur") : NULL;
    Py_buffer *tv = cv ? hold(&held, tok_obj, 1, 4, 1, "tok") : NULL;
    Py_buffer *nv = tv ? hold(&held, nraw_obj, 1, 4, 1, "nraw") : NULL;
    Py_buffer *rv = nv ? hold(&held, raw_obj, 1, 8, 1, "raw") : NULL;
    Py_buffer *gv = rv ? hold(&held, neg_obj, 1, 1, 1, "neg") : NULL;
    Py_buffer *lv = gv ? hold(&held, low_obj, 1, 4, 1, "low") : NULL;
    if (!lv)
        goto done;
    Py_ssize_t h = vv->shape[0], w = vv->shape[1];
    if (check_cur(cv, h, w) < 0 || parse_views(views_obj, h, w, views, &nviews, &total) < 0)
        goto done;
    if (direct < 4 || limit > ((long long)1 << 30) || shift < 0 || shift > 16 || tv->shape[0] != total ||
        nv->shape[0] != total || rv->shape[0] != total || gv->shape[0] != total || tv->strides[0] != 4 ||
        nv->strides[0] != 4 || rv->strides[0] != 8 || gv->strides[0] != 1 ||
        (shift && (lv->shape[0] != total || lv->strides[0] != 4))) {
        PyErr_SetString(PyExc_ValueError, "take_pass: bad arguments");
        goto done;
    }
    int32_t *tok = tv->buf, *nraw = nv->buf, *low = lv->buf;
    uint64_t *raw = rv->buf;
    uint8_t *neg = gv->buf;
    const uint32_t mask = ((uint32_t)1 << shift) - 1;
    Py_ssize_t k = 0, nbig = 0, nnz = 0;
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t v = 0; v < nviews && ok; v++) {
        Py_ssize_t y0 = views[v][0], x0 = views[v][1], s = views[v][2];
        for (Py_ssize_t y = y0; y < h && ok; y += s) {
            const char *vrow = (const char *)vv->buf + y * vv->strides[0];
            char *crow = (char *)cv->buf + (y + PAD) * cv->strides[0] + PAD * cv->strides[1];
            for (Py_ssize_t x = x0; x < w; x += s) {
                int64_t value = *(const int32_t *)(vrow + x * vv->strides[1]);
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
                *(int32_t *)(crow + x * cv->strides[1]) = m < (uint32_t)cap ? (int32_t)m : cap;
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
done:
    release_held(&held);
    return result;
}

/* dec.decode(model, sizes[:m]) (a uniform symbol of each size) copied into out (int32, m);
 * sizes: the NumPy array the values were written into. */
static int decode_uniform(PyObject *dec, PyObject *model, PyObject *sizes, Py_ssize_t m, int32_t *out) {
    PyObject *view = PySequence_GetSlice(sizes, 0, m);
    if (!view)
        return -1;
    PyObject *vals = PyObject_CallMethod(dec, "decode", "OO", model, view);
    Py_DECREF(view);
    if (!vals)
        return -1;
    Held held = {.n = 0};
    Py_buffer *v = hold(&held, vals, 1, 4, 0, "decoded values");
    int ok = v && v->shape[0] == m && v->strides[0] == 4;
    if (ok)
        memcpy(out, v->buf, m * sizeof(int32_t));
    else if (v)
        PyErr_SetString(PyExc_ValueError, "decode_pass: the decoder returned the wrong number of values");
    release_held(&held);
    Py_DECREF(vals);
    return ok ? 0 : -1;
}

/* What one band-pass of the decoder needs besides its arguments: scratch of the band's largest
 * pass, allocated once a band. */
typedef struct {
    int32_t *act, *order, *tok, *nraw, *raw, *low, *part;
    uint8_t *scratch;
    int16_t *zeros;
} Work;

static void free_work(Work *k) {
    PyMem_RawFree(k->act);
    PyMem_RawFree(k->order);
    PyMem_RawFree(k->tok);
    PyMem_RawFree(k->nraw);
    PyMem_RawFree(k->raw);
    PyMem_RawFree(k->low);
    PyMem_RawFree(k->part);
    PyMem_RawFree(k->scratch);
    PyMem_RawFree(k->zeros);
}

static int alloc_work(Work *k, Py_ssize_t n, Py_ssize_t w) {
    size_t m = (size_t)(n ? n : 1) * sizeof(int32_t);
    *k = (Work){PyMem_RawMalloc(m), PyMem_RawMalloc(m), PyMem_RawMalloc(m), PyMem_RawMalloc(m), PyMem_RawMalloc(m),
                PyMem_RawMalloc(m), PyMem_RawMalloc(m), PyMem_RawMalloc(n ? n : 1),
                PyMem_RawCalloc(w + 2, sizeof(int16_t))};
    if (!k->act || !k->order || !k->tok || !k->nraw || !k->raw || !k->low || !k->part || !k->scratch || !k->zeros) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The arguments every pass of a band shares. */
typedef struct {
    PyObject *dec, *scale_model, *uniform, *sizes_obj;
    const Py_buffer *cur, *out, *scales, *signs;
    int32_t *sizes;
    const Sources *sources;
    int direct, cap, tokens, chunk, shift;
} Band;

/* One pass decoded with the range decoder B->dec: its scale (one of scales), its activities and
 * buckets, each bucket's tokens (models: one per bucket), their raw bits (uniform symbols of at
 * most chunk bits, lowest first, as bitcoding.code_bits), the low shift bits of every magnitude
 * (16-bit planes), then place_loop. 0, or -1 with the exception set; *pos -1 where the signs
 * ran out. */
static int decode_one(const Band *B, PyObject *models, Py_ssize_t views[MAX_VIEWS][3], Py_ssize_t nviews,
                      Py_ssize_t n, const int32_t wts[FEATURES], const Py_buffer *lut, Work *k, Py_ssize_t *pos) {
    Py_ssize_t h = B->out->shape[0], w = B->out->shape[1], nb = PyList_GET_SIZE(models);
    int64_t counts[MAX_BUCKETS];
    PyObject *r = PyObject_CallMethod(B->dec, "decode", "O", B->scale_model); /* the pass's scale, first */
    if (!r)
        return -1;
    Py_ssize_t scale_index = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (scale_index == -1 && PyErr_Occurred())
        return -1;
    if (scale_index < 0 || scale_index >= B->scales->shape[0]) {
        PyErr_SetString(PyExc_ValueError, "decode_band: scale out of range");
        return -1;
    }
    int32_t scale = ((const int32_t *)B->scales->buf)[scale_index];
    Py_BEGIN_ALLOW_THREADS
    activity_loop(B->cur, B->sources, wts, views, nviews, h, w, k->zeros, k->act);
    counting_sort(k->act, n, scale, lut->buf, lut->shape[0], nb, k->order, counts, k->scratch);
    Py_END_ALLOW_THREADS
    /* each bucket's tokens, back to their positions */
    Py_ssize_t at = 0;
    for (Py_ssize_t j = 0; j < nb; j++) {
        if (!counts[j])
            continue;
        PyObject *got = PyObject_CallMethod(B->dec, "decode", "On", PyList_GET_ITEM(models, j), (Py_ssize_t)counts[j]);
        if (!got)
            return -1;
        Held one = {.n = 0};
        Py_buffer *g = hold(&one, got, 1, 4, 0, "decoded tokens");
        int ok = g && g->shape[0] == counts[j] && g->strides[0] == 4;
        if (ok)
            for (Py_ssize_t i = 0; i < counts[j]; i++)
                k->tok[k->order[at + i]] = ((const int32_t *)g->buf)[i];
        else if (g)
            PyErr_SetString(PyExc_ValueError, "decode_band: the decoder returned the wrong number of tokens");
        release_held(&one);
        Py_DECREF(got);
        if (!ok)
            return -1;
        at += counts[j];
    }
    /* the raw bits of the tokens that have them, in coding order, chunk bits at a time */
    Py_ssize_t nbig = 0;
    int most = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t t = k->tok[i];
        if (t < 0 || t >= B->tokens) {
            PyErr_SetString(PyExc_ValueError, "decode_band: a token out of range");
            return -1;
        }
        if (t >= B->direct) {
            int rb = (t - B->direct) / 4 + 2;
            k->raw[nbig] = 0;
            k->nraw[nbig++] = rb;
            if (rb > most)
                most = rb;
        }
    }
    for (int start = 0; start < most; start += B->chunk) {
        Py_ssize_t m = 0;
        for (Py_ssize_t j = 0; j < nbig; j++) {
            int width = k->nraw[j] - start;
            if (width > 0)
                B->sizes[m++] = (int32_t)1 << (width < B->chunk ? width : B->chunk);
        }
        if (decode_uniform(B->dec, B->uniform, B->sizes_obj, m, k->part) < 0)
            return -1;
        for (Py_ssize_t j = 0, q = 0; j < nbig; j++)
            if (k->nraw[j] > start)
                k->raw[j] |= k->part[q++] << start;
    }
    if (B->shift) {
        /* the low bits of every magnitude, one uniform symbol each */
        for (Py_ssize_t i = 0; i < n; i++)
            B->sizes[i] = (int32_t)1 << B->shift;
        if (decode_uniform(B->dec, B->uniform, B->sizes_obj, n, k->low) < 0)
            return -1;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = place_loop(k->tok, k->raw, nbig, k->low, B->shift, B->cur, B->out, views, nviews, B->signs->buf,
                        8 * B->signs->len, pos, B->direct, B->cap);
    Py_END_ALLOW_THREADS
    if (status == -2) {
        PyErr_SetString(PyExc_ValueError, "decode_band: raw bits do not match the tokens");
        return -1;
    }
    return 0;
}

/* decode_band(dec, models, cur, out, views, weights, sources, luts, scales, signs, pos,
 * scale_model, uniform, sizes, direct, cap, tokens, chunk, shift) -> pos after (-1: the signs
 * ran out): a version 5 band's passes, each given by its views, its models (a list, one per
 * bucket), its weights (10 int32) and its bucket table (lut), decoded into out and cur with the
 * range decoder dec and the band's raw signs from bit pos of signs. sizes: int32 scratch (a
 * NumPy array) of at least the band's size. lossless_coder._decode_band's step-by-step path does
 * the same. */
PyObject *decode_band(PyObject *self, PyObject *args) {
    PyObject *dec, *models, *cur_obj, *out_obj, *views_obj, *weights_obj, *sources_obj, *luts_obj, *scales_obj;
    PyObject *signs_obj, *scale_model, *uniform, *sizes_obj;
    Py_ssize_t pos;
    int direct, cap, tokens, chunk, shift;
    if (!PyArg_ParseTuple(args, "OO!OOO!O!OO!OOnOOOiiiii", &dec, &PyList_Type, &models, &cur_obj, &out_obj, &PyList_Type,
                          &views_obj, &PyList_Type, &weights_obj, &sources_obj, &PyList_Type, &luts_obj, &scales_obj,
                          &signs_obj, &pos, &scale_model, &uniform, &sizes_obj, &direct, &cap, &tokens, &chunk, &shift))
        return NULL;
    Py_ssize_t npasses = PyList_GET_SIZE(models);
    if (PyList_GET_SIZE(views_obj) != npasses || PyList_GET_SIZE(weights_obj) != npasses ||
        PyList_GET_SIZE(luts_obj) != npasses || npasses > 8) {
        PyErr_SetString(PyExc_ValueError, "decode_band: one models, views, weights and lut per pass");
        return NULL;
    }
    Held held = {.n = 0};
    Sources S;
    Work work = {0};
    PyObject *result = NULL;
    Py_ssize_t views[8][MAX_VIEWS][3], nviews[8], n[8], most = 0;
    int32_t wts[8][FEATURES];
    const Py_buffer *lut[8];
    Py_buffer *cv = hold(&held, cur_obj, 2, 4, 1, "cur");
    Py_buffer *ov = cv ? hold(&held, out_obj, 2, 4, 1, "out") : NULL;
    Py_buffer *scv = ov ? hold(&held, scales_obj, 1, 4, 0, "scales") : NULL;
    Py_buffer *sv = scv ? hold_bytes(&held, signs_obj) : NULL;
    Py_buffer *zv = sv ? hold(&held, sizes_obj, 1, 4, 1, "sizes") : NULL;
    if (!zv)
        goto done;
    Py_ssize_t h = ov->shape[0], w = ov->shape[1];
    if (check_cur(cv, h, w) < 0 || hold_sources(&held, sources_obj, h, w, &S) < 0)
        goto done;
    for (Py_ssize_t p = 0; p < npasses; p++) {
        PyObject *m = PyList_GET_ITEM(models, p);
        if (!PyList_Check(m)) {
            PyErr_SetString(PyExc_TypeError, "decode_band: each pass's models must be a list");
            goto done;
        }
        if (get_weights(PyList_GET_ITEM(weights_obj, p), wts[p]) < 0 ||
            parse_views(PyList_GET_ITEM(views_obj, p), h, w, views[p], &nviews[p], &n[p]) < 0 ||
            !(lut[p] = hold(&held, PyList_GET_ITEM(luts_obj, p), 1, 1, 0, "lut")) ||
            check_lut(lut[p], PyList_GET_SIZE(m)) < 0)
            goto done;
        if (n[p] > most)
            most = n[p];
    }
    if (zv->shape[0] < most || zv->strides[0] != 4 || scv->strides[0] != 4 || direct < 4 || chunk < 1 || chunk > 30 ||
        pos < 0 || tokens < 1 || shift < 0 || shift > chunk) {
        PyErr_SetString(PyExc_ValueError, "decode_band: bad arguments");
        goto done;
    }
    if (alloc_work(&work, most, w) < 0)
        goto done;
    Band B = {dec, scale_model, uniform, sizes_obj, cv, ov, scv, sv, zv->buf, &S, direct, cap, tokens, chunk, shift};
    for (Py_ssize_t p = 0; p < npasses && pos >= 0; p++)
        if (n[p] && decode_one(&B, PyList_GET_ITEM(models, p), views[p], nviews[p], n[p], wts[p], lut[p], &work, &pos) < 0)
            goto done;
    result = PyLong_FromSsize_t(pos);
done:
    free_work(&work);
    release_held(&held);
    return result;
}
