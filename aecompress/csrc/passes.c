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

/* decode_pass(dec, models, cur, out, views, weights, sources, lut, scales, signs, pos,
 * scale_model, uniform, sizes, direct, cap, tokens, chunk, shift) -> pos after (-1: the signs
 * ran out): one version 5 pass decoded with the range decoder dec: its scale (one of scales),
 * its activities and buckets, each bucket's tokens (models: one per bucket), their raw bits
 * (uniform symbols of at most chunk bits, lowest first, as bitcoding.code_bits), the low shift
 * bits of every magnitude (16-bit planes), then place_loop. sizes: int32 scratch (a NumPy array)
 * of at least the pass's size. lossless_coder._decode_band's step-by-step path does the same. */
PyObject *decode_pass(PyObject *self, PyObject *args) {
    PyObject *dec, *models, *cur_obj, *out_obj, *views_obj, *weights_obj, *sources_obj, *lut_obj, *scales_obj;
    PyObject *signs_obj, *scale_model, *uniform, *sizes_obj;
    Py_ssize_t pos;
    int direct, cap, tokens, chunk, shift;
    if (!PyArg_ParseTuple(args, "OO!OOOOOOOOnOOOiiiii", &dec, &PyList_Type, &models, &cur_obj, &out_obj, &views_obj,
                          &weights_obj, &sources_obj, &lut_obj, &scales_obj, &signs_obj, &pos, &scale_model, &uniform,
                          &sizes_obj, &direct, &cap, &tokens, &chunk, &shift))
        return NULL;
    Held held = {.n = 0};
    Sources S;
    int32_t wts[FEATURES];
    Py_ssize_t views[MAX_VIEWS][3], nviews, n;
    int32_t *act = NULL, *order = NULL, *tok = NULL, *nraw = NULL, *raw = NULL, *low = NULL, *part = NULL;
    uint8_t *scratch = NULL;
    int16_t *zeros = NULL;
    int64_t counts[MAX_BUCKETS];
    PyObject *result = NULL;
    Py_buffer *cv = hold(&held, cur_obj, 2, 4, 1, "cur");
    Py_buffer *ov = cv ? hold(&held, out_obj, 2, 4, 1, "out") : NULL;
    Py_buffer *lv = ov ? hold(&held, lut_obj, 1, 1, 0, "lut") : NULL;
    Py_buffer *scv = lv ? hold(&held, scales_obj, 1, 4, 0, "scales") : NULL;
    Py_buffer *sv = scv ? hold_bytes(&held, signs_obj) : NULL;
    Py_buffer *zv = sv ? hold(&held, sizes_obj, 1, 4, 1, "sizes") : NULL;
    if (!zv)
        goto done;
    Py_ssize_t h = ov->shape[0], w = ov->shape[1], nb = PyList_GET_SIZE(models);
    if (check_cur(cv, h, w) < 0 || get_weights(weights_obj, wts) < 0 ||
        parse_views(views_obj, h, w, views, &nviews, &n) < 0 || check_lut(lv, nb) < 0 ||
        hold_sources(&held, sources_obj, h, w, &S) < 0)
        goto done;
    if (zv->shape[0] < n || zv->strides[0] != 4 || scv->strides[0] != 4 || direct < 4 || chunk < 1 || chunk > 30 ||
        pos < 0 || tokens < 1 || shift < 0 || shift > chunk) {
        PyErr_SetString(PyExc_ValueError, "decode_pass: bad arguments");
        goto done;
    }
    if (!n) {
        result = PyLong_FromSsize_t(pos);
        goto done;
    }
    /* the pass's scale, sent first */
    PyObject *r = PyObject_CallMethod(dec, "decode", "O", scale_model);
    if (!r)
        goto done;
    Py_ssize_t scale_index = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (scale_index == -1 && PyErr_Occurred())
        goto done;
    if (scale_index < 0 || scale_index >= scv->shape[0]) {
        PyErr_SetString(PyExc_ValueError, "decode_pass: scale out of range");
        goto done;
    }
    act = PyMem_RawMalloc(n * sizeof(int32_t));
    order = PyMem_RawMalloc(n * sizeof(int32_t));
    tok = PyMem_RawMalloc(n * sizeof(int32_t));
    nraw = PyMem_RawMalloc(n * sizeof(int32_t));
    raw = PyMem_RawCalloc(n, sizeof(int32_t));
    part = PyMem_RawMalloc(n * sizeof(int32_t));
    scratch = PyMem_RawMalloc(n);
    zeros = PyMem_RawCalloc(w + 2, sizeof(int16_t));
    if (!act || !order || !tok || !nraw || !raw || !part || !scratch || !zeros) {
        PyErr_NoMemory();
        goto done;
    }
    int32_t scale = ((const int32_t *)scv->buf)[scale_index];
    Py_BEGIN_ALLOW_THREADS
    activity_loop(cv, &S, wts, views, nviews, h, w, zeros, act);
    counting_sort(act, n, scale, lv->buf, lv->shape[0], nb, order, counts, scratch);
    Py_END_ALLOW_THREADS
    /* each bucket's tokens, back to their positions */
    Py_ssize_t k = 0;
    for (Py_ssize_t j = 0; j < nb; j++) {
        if (!counts[j])
            continue;
        PyObject *got = PyObject_CallMethod(dec, "decode", "On", PyList_GET_ITEM(models, j), (Py_ssize_t)counts[j]);
        if (!got)
            goto done;
        Held one = {.n = 0};
        Py_buffer *g = hold(&one, got, 1, 4, 0, "decoded tokens");
        int ok = g && g->shape[0] == counts[j] && g->strides[0] == 4;
        if (ok)
            for (Py_ssize_t i = 0; i < counts[j]; i++)
                tok[order[k + i]] = ((const int32_t *)g->buf)[i];
        else if (g)
            PyErr_SetString(PyExc_ValueError, "decode_pass: the decoder returned the wrong number of tokens");
        release_held(&one);
        Py_DECREF(got);
        if (!ok)
            goto done;
        k += counts[j];
    }
    /* the raw bits of the tokens that have them, in coding order, chunk bits at a time */
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
    int32_t *sizes = zv->buf;
    for (int start = 0; start < most; start += chunk) {
        Py_ssize_t m = 0;
        for (Py_ssize_t j = 0; j < nbig; j++) {
            int width = nraw[j] - start;
            if (width > 0)
                sizes[m++] = (int32_t)1 << (width < chunk ? width : chunk);
        }
        if (decode_uniform(dec, uniform, sizes_obj, m, part) < 0)
            goto done;
        for (Py_ssize_t j = 0, q = 0; j < nbig; j++)
            if (nraw[j] > start)
                raw[j] |= part[q++] << start;
    }
    if (shift) {
        /* the low bits of every magnitude, one uniform symbol each */
        low = PyMem_RawMalloc(n * sizeof(int32_t));
        if (!low) {
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t i = 0; i < n; i++)
            sizes[i] = (int32_t)1 << shift;
        if (decode_uniform(dec, uniform, sizes_obj, n, low) < 0)
            goto done;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = place_loop(tok, raw, nbig, low, shift, cv, ov, views, nviews, sv->buf, 8 * sv->len, &pos, direct, cap);
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
    PyMem_RawFree(part);
    PyMem_RawFree(scratch);
    PyMem_RawFree(zeros);
    release_held(&held);
    return result;
}
