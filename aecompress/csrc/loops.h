/* The lossless coder's per-coefficient loops in C (the extension aecompress._lossless_loops):
 * the same integer arithmetic as the NumPy reference in aecompress/lossless_coder.py and
 * reversible.py, which the tests compare against, without its temporaries and per-call costs.
 * Plain buffer protocol, no NumPy headers. Each file has one job: buffers.c (taking arguments),
 * lifting.c (the reversible wavelet), contexts.c (activities, buckets, the encoder's scale
 * search), passes.c (a band-pass's tokens, raw bits and signs, both directions), module.c.
 */
#ifndef AEC_LOOPS_H
#define AEC_LOOPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define PAD 2 /* the border of zeros around a band's decoded magnitudes (lossless_coder._PAD) */
#define FEATURES 10
#define SOURCES 7 /* parent, parent_nb, siblings, luma, cb, low_h, low_v */
#define MAX_VIEWS 4
#define MAX_BUCKETS 256
#define HELD_MAX 64 /* a call's buffers: up to a token run per bucket and a few more */

/* int32 arithmetic wrapping as NumPy's does (never reached by valid data, but the two paths must
 * agree on everything); >> on int32 is arithmetic in gcc, clang and MSVC, as in NumPy */
#define WRAP(e) ((int32_t)(uint32_t)(e))
#define U(v) ((uint32_t)(v))

/* buffers.c: the buffers a call holds, released together */
typedef struct {
    Py_buffer view[HELD_MAX];
    int n;
} Held;

Py_buffer *hold(Held *h, PyObject *obj, int ndim, Py_ssize_t itemsize, int writable, const char *name);
Py_buffer *hold_bytes(Held *h, PyObject *obj);
Py_buffer *hold_contiguous(Held *h, PyObject *obj, int writable, const char *name);
void release_held(Held *h);
int parse_views(PyObject *views_obj, Py_ssize_t h, Py_ssize_t w, Py_ssize_t views[MAX_VIEWS][3], Py_ssize_t *nviews,
                Py_ssize_t *total);
int check_cur(const Py_buffer *cur, Py_ssize_t h, Py_ssize_t w);
int get_weights(PyObject *obj, int32_t wts[FEATURES]);

/* contexts.c */
typedef struct {
    const char *buf;
    Py_ssize_t rows, cols, s0;
} Rows; /* an int16 2-D source, rows contiguous */

typedef struct {
    int have[SOURCES];
    Rows plane[SOURCES];
} Sources;

int hold_sources(Held *h, PyObject *obj, Py_ssize_t rows, Py_ssize_t cols, Sources *S);
int check_lut(const Py_buffer *lut, Py_ssize_t nb);
void activity_loop(const Py_buffer *cur, const Sources *S, const int32_t wts[FEATURES], Py_ssize_t views[MAX_VIEWS][3],
                   Py_ssize_t nviews, Py_ssize_t h, Py_ssize_t w, const int16_t *zeros, int32_t *out);
void counting_sort(const int32_t *act, Py_ssize_t n, int32_t scale, const uint8_t *lut, Py_ssize_t lut_size,
                   Py_ssize_t nb, int32_t *order, int64_t *counts, uint8_t *scratch);
PyObject *activity(PyObject *self, PyObject *args);
PyObject *bucket_order(PyObject *self, PyObject *args);
PyObject *scale_costs(PyObject *self, PyObject *args);

/* lifting.c */
PyObject *lift(PyObject *self, PyObject *args);

/* passes.c */
PyObject *scatter_tokens(PyObject *self, PyObject *args);
PyObject *take_pass(PyObject *self, PyObject *args);
PyObject *decode_band(PyObject *self, PyObject *args);

#endif
