"""Rate-distortion helpers shared by the evaluation commands: PSNR and Bjøntegaard deltas."""

from __future__ import annotations

import numpy as np

from aecompress.images import psnr  # noqa: F401 - one definition, re-exported for the evaluations


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM over RGB of two (H, W, 3) images on 0..255, as pytorch_msssim computes it (the
    figure the learned-codec literature reports)."""
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    def t(x):
        return torch.from_numpy(np.asarray(x, dtype=np.float32)).permute(2, 0, 1)[None]

    return float(_ms_ssim(t(a), t(b), data_range=255, size_average=True))


def ssim_db(v: float) -> float:
    """MS-SSIM as -10 log10(1 - MS-SSIM): the scale BD-rates on MS-SSIM are taken on."""
    return float(-10 * np.log10(max(1e-12, 1 - v)))


def bd_rate(rate_ref, psnr_ref, rate_test, psnr_test) -> float:
    """Average bit-rate difference (in %) of test against ref at equal PSNR.

    Piecewise-cubic monotone interpolation of log-rate over PSNR (as in the later revisions of
    the Bjøntegaard method) on the PSNR interval both curves cover.
    """
    from scipy.interpolate import PchipInterpolator

    def curve(r, p):
        order = np.argsort(p)
        p = np.asarray(p, dtype=np.float64)[order]
        lr = np.log(np.asarray(r, dtype=np.float64)[order])
        keep = np.concatenate([[True], np.diff(p) > 1e-9])
        return PchipInterpolator(p[keep], lr[keep]), p[keep].min(), p[keep].max()

    if min(len(rate_ref), len(rate_test)) < 2:
        return float("nan")
    f_ref, lo_r, hi_r = curve(rate_ref, psnr_ref)
    f_test, lo_t, hi_t = curve(rate_test, psnr_test)
    lo, hi = max(lo_r, lo_t), min(hi_r, hi_t)
    if hi <= lo:
        return float("nan")
    grid = np.linspace(lo, hi, 1001)
    diff = np.trapezoid(f_test(grid) - f_ref(grid), grid) / (hi - lo)
    return float((np.exp(diff) - 1) * 100)


def main(argv: list[str] | None = None) -> None:
    """python -m training.rd REF/rd.json TEST/rd.json: BD-rates (PSNR and MS-SSIM) of the aec
    curve of one training.evaluate report against another's, e.g. two models on the same images."""
    import argparse
    import json

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("ref")
    ap.add_argument("test")
    args = ap.parse_args(argv)
    ref, test = (json.loads(open(p).read()) for p in (args.ref, args.test))
    a, b = ref["curves"]["aec"], test["curves"]["aec"]
    for key in ("psnr", "msssim_db"):
        rate = bd_rate([r["bpp"] for r in a], [r[key] for r in a], [r["bpp"] for r in b], [r[key] for r in b])
        print(f"{test.get('model', args.test)} vs {ref.get('model', args.ref)}, BD-rate on {key}: {rate:+.2f}%")


if __name__ == "__main__":
    main()
