/* The reversible wavelet's lifting steps (reversible.py's 5/3, (9,7)-M and (13,7)-T), with
 * whole-sample symmetric extension, both directions, along either axis of a 2-D array. */
#include "loops.h"

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
    if (hi > nd)
        hi = nd;
    if (hi < lo)
        hi = lo;
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
    if (hi > ns)
        hi = ns;
    if (hi < lo)
        hi = lo;
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

/* Each row a signal, lifted in a contiguous copy of its halves (tmp: n + 1 values). */
static void lift_rows(int32_t *x, int32_t *s, int32_t *d, Py_ssize_t n, Py_ssize_t nb, const Py_ssize_t *sm,
                      const Py_ssize_t *dm, int kernel, int inverse, int32_t *tmp) {
    Py_ssize_t ns = (n + 1) / 2, nd = n / 2;
    int sign = inverse ? -1 : 1;
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
}

/* Each column a signal: whole rows at a time, in place on s and d (forward) or on x's even and
 * odd rows (inverse). */
static void lift_columns(int32_t *x, int32_t *s, int32_t *d, Py_ssize_t n, Py_ssize_t nb, const Py_ssize_t *sm,
                         const Py_ssize_t *dm, int kernel, int inverse) {
    Py_ssize_t ns = (n + 1) / 2, nd = n / 2, row = inverse ? 2 * nb : nb; /* the halves' row strides */
    int sign = inverse ? -1 : 1;
    int32_t *S = inverse ? x : s, *D = inverse ? x + nb : d;
    for (Py_ssize_t i = 0; i < ns; i++)
        memcpy(inverse ? S + i * row : s + i * nb, inverse ? s + i * nb : x + 2 * i * nb, nb * sizeof(int32_t));
    for (Py_ssize_t i = 0; i < nd; i++)
        memcpy(inverse ? D + i * row : d + i * nb, inverse ? d + i * nb : x + (2 * i + 1) * nb, nb * sizeof(int32_t));
    if (!nd)
        return;
#define SROW(k) (S + sm[k] * row)
#define DROW(k) (D + dm[k] * row)
    if (!inverse)
        for (Py_ssize_t i = 0; i < nd; i++)
            predict_rows(D + i * row, SROW(i), SROW(i + 1), SROW(i + 2), SROW(i + 3), nb, kernel, -sign);
    for (Py_ssize_t i = 0; i < ns; i++)
        update_rows(S + i * row, DROW(i), DROW(i + 1), DROW(i + 2), DROW(i + 3), nb, kernel, sign);
    if (inverse)
        for (Py_ssize_t i = 0; i < nd; i++)
            predict_rows(D + i * row, SROW(i), SROW(i + 1), SROW(i + 2), SROW(i + 3), nb, kernel, -sign);
#undef SROW
#undef DROW
}

/* lift(x, s, d, axis, kernel, inverse): forward (x -> even samples s and odd samples d, each
 * lifted) or inverse (s, d -> x) along axis of C-contiguous 2-D int32 arrays; kernel indexes
 * reversible.KERNELS. */
PyObject *lift(PyObject *self, PyObject *args) {
    PyObject *x_obj, *s_obj, *d_obj;
    int axis, kernel, inverse;
    if (!PyArg_ParseTuple(args, "OOOiip", &x_obj, &s_obj, &d_obj, &axis, &kernel, &inverse))
        return NULL;
    if (axis < 0 || axis > 1 || kernel < 0 || kernel > 2) {
        PyErr_SetString(PyExc_ValueError, "lift: bad axis or kernel");
        return NULL;
    }
    Held held = {.n = 0};
    PyObject *result = NULL;
    Py_ssize_t *sm = NULL, *dm = NULL;
    int32_t *tmp = NULL;
    Py_buffer *xv = hold_contiguous(&held, x_obj, inverse, "x");
    Py_buffer *sv = xv ? hold_contiguous(&held, s_obj, !inverse, "s") : NULL;
    Py_buffer *dv = sv ? hold_contiguous(&held, d_obj, !inverse, "d") : NULL;
    if (!dv)
        goto done;
    Py_ssize_t n = xv->shape[axis], nb = xv->shape[1 - axis], ns = (n + 1) / 2, nd = n / 2;
    if (sv->shape[axis] != ns || dv->shape[axis] != nd || sv->shape[1 - axis] != nb || dv->shape[1 - axis] != nb) {
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
    Py_BEGIN_ALLOW_THREADS
    if (axis == 1)
        lift_rows(xv->buf, sv->buf, dv->buf, n, nb, sm, dm, kernel, inverse, tmp);
    else
        lift_columns(xv->buf, sv->buf, dv->buf, n, nb, sm, dm, kernel, inverse);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyMem_RawFree(sm);
    PyMem_RawFree(dm);
    PyMem_RawFree(tmp);
    release_held(&held);
    return result;
}
