/* The extension module aecompress._lossless_loops: its functions, each documented where it is
 * defined. */
#include "loops.h"

static PyMethodDef methods[] = {
    {"activity", activity, METH_VARARGS, "A pass's context activities (see lossless_coder._Band.activity)."},
    {"bucket_order", bucket_order, METH_VARARGS, "Buckets of scaled activities, positions grouped by bucket."},
    {"scale_costs", scale_costs, METH_VARARGS, "Fixed-point bits of a sample under each activity scale."},
    {"lift", lift, METH_VARARGS, "One reversible lifting transform along an axis, forward or inverse."},
    {"scatter_tokens", scatter_tokens, METH_VARARGS, "A pass's tokens back in coding order; raw bit counts."},
    {"take_pass", take_pass, METH_VARARGS, "A pass's values as tokens, raw bits, signs; the context updated."},
    {"decode_band", decode_band, METH_VARARGS, "A version 5 band's passes decoded and put in place; the sign bit after."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_lossless_loops", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__lossless_loops(void) { return PyModule_Create(&module); }
