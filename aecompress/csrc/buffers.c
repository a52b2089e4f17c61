/* Taking a call's arguments: buffers held until the call ends, views, weights, shapes. */
#include "loops.h"

static Py_buffer *held(Held *h, PyObject *obj, int flags, const char *name) {
    if (h->n >= HELD_MAX) {
        PyErr_Format(PyExc_RuntimeError, "%s: too many buffers held", name);
        return NULL;
    }
    if (PyObject_GetBuffer(obj, &h->view[h->n], flags) < 0)
        return NULL;
    return &h->view[h->n++];
}

/* A buffer of obj of ndim dimensions and items of itemsize bytes (writable if asked), any
 * strides, held until release_held; NULL with the exception set otherwise. */
Py_buffer *hold(Held *h, PyObject *obj, int ndim, Py_ssize_t itemsize, int writable, const char *name) {
    Py_buffer *v = held(h, obj, PyBUF_STRIDES | (writable ? PyBUF_WRITABLE : 0), name);
    if (v && (v->ndim != ndim || v->itemsize != itemsize)) {
        PyErr_Format(PyExc_ValueError, "%s: expected %d-D items of %zd bytes", name, ndim, itemsize);
        return NULL;
    }
    return v;
}

/* Bytes as they lie (bytes, memoryview, uint8 arrays). */
Py_buffer *hold_bytes(Held *h, PyObject *obj) { return held(h, obj, PyBUF_SIMPLE, "bytes"); }

/* A C-contiguous 2-D array of 4-byte items. */
Py_buffer *hold_contiguous(Held *h, PyObject *obj, int writable, const char *name) {
    Py_buffer *v = held(h, obj, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0), name);
    if (v && (v->ndim != 2 || v->itemsize != 4)) {
        PyErr_Format(PyExc_ValueError, "%s: expected a 2-D array of 4-byte items", name);
        return NULL;
    }
    return v;
}

void release_held(Held *h) {
    while (h->n > 0)
        PyBuffer_Release(&h->view[--h->n]);
}

/* A pass's views ((y, x, s), ...) of an h x w band: checked, and how many positions they hold. */
int parse_views(PyObject *views_obj, Py_ssize_t h, Py_ssize_t w, Py_ssize_t views[MAX_VIEWS][3], Py_ssize_t *nviews,
                Py_ssize_t *total) {
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

/* cur: int32, PAD-bordered around an h x w band, rows contiguous */
int check_cur(const Py_buffer *cur, Py_ssize_t h, Py_ssize_t w) {
    if (h < 0 || w < 0 || cur->shape[0] != h + 2 * PAD || cur->shape[1] != w + 2 * PAD || cur->strides[1] != 4) {
        PyErr_SetString(PyExc_ValueError, "cur: not the band's shape with its border, or rows not contiguous");
        return -1;
    }
    return 0;
}

int get_weights(PyObject *obj, int32_t wts[FEATURES]) {
    Held h = {.n = 0};
    Py_buffer *v = hold(&h, obj, 1, 4, 0, "weights");
    int ok = v && v->shape[0] == FEATURES;
    for (int i = 0; ok && i < FEATURES; i++)
        wts[i] = *(const int32_t *)((const char *)v->buf + i * v->strides[0]);
    if (v && !ok)
        PyErr_SetString(PyExc_ValueError, "weights: expected ten");
    release_held(&h);
    return ok ? 0 : -1;
}
