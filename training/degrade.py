"""Randomised synthetic degradations: what cameras and the web do to a clean photograph.

The blind denoiser learns from these (training/train_denoiser.py) and is measured on fixed ones
(training/evaluate_denoise.py), so both sides use the same code. The pipeline follows SCUNet's
data synthesis and CBDNet's camera model, randomised:

    clean sRGB -> [resize up or down] -> noise -> [resize back] -> 8 bits -> [JPEG, once or twice]

with the noise one of
- white Gaussian, equal in every channel (the standard benchmark, kept in the mix);
- Gaussian with a random 3x3 channel covariance (colour noise, unequal and correlated channels);
- camera: Poisson-Gaussian in linear light (shot noise grows with the signal, read noise does
  not), per-channel white-balance gains, then the sRGB tone curve;
- none (a clean or only-compressed photograph must come back unchanged),
and the noise made spatially correlated by a random Bayer mosaic and bilinear demosaic, or by a
small random blur. A `Recipe` holds every random choice, so a condition can be drawn (`sample`),
written down (`CONDITIONS`) and replayed (`apply`) bit for bit from a seed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image
from scipy import ndimage

NOISES = ("none", "white", "channel", "camera")
CORRELATIONS = ("none", "bayer", "blur")
RESIZES = ("none", "down_after", "up_after")


@dataclass(frozen=True)
class Recipe:
    """Every choice of one degradation. Levels are on the 0..255 scale for Gaussian noise, and
    in linear light on 0..1 for the camera's shot (variance per unit signal) and read (std)."""

    noise: str = "white"
    sigma: float = 25.0
    mix: tuple[tuple[float, ...], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    shot: float = 0.0
    read: float = 0.0
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    correlation: str = "none"
    blur: float = 0.0
    bayer_offset: tuple[int, int] = (0, 0)
    resize: str = "none"
    factor: float = 1.0
    jpeg: tuple[tuple[int, int], ...] = field(default=())  # (quality, subsampling 0=4:4:4, 2=4:2:0)

    def describe(self) -> str:
        if self.noise == "white":
            parts = [f"AWGN {self.sigma:g}"]
        elif self.noise == "channel":
            parts = [f"colour Gaussian {self.sigma:g}"]
        elif self.noise == "camera":
            parts = [f"Poisson-Gaussian shot {self.shot:g} read {self.read:g}"]
        else:
            parts = ["no noise"]
        if self.correlation == "bayer":
            parts.append("Bayer demosaic")
        elif self.correlation == "blur":
            parts.append(f"blurred {self.blur:g}")
        if self.resize != "none":
            parts.append(f"{'downscaled' if self.resize == 'down_after' else 'upscaled'} {self.factor:g}x after")
        for q, sub in self.jpeg:
            parts.append(f"JPEG q{q} {'4:2:0' if sub == 2 else '4:4:4'}")
        return ", ".join(parts)


def _random_mix(rng: np.random.Generator) -> tuple[tuple[float, ...], ...]:
    """A random channel mixing matrix whose noise has mean per-channel variance 1."""
    m = np.eye(3) * rng.uniform(0.3, 1.0, 3) + rng.normal(0, 0.35, (3, 3))
    m /= np.sqrt(np.mean(np.sum(m**2, axis=1)))
    return tuple(tuple(float(v) for v in row) for row in m)


def sample(rng: np.random.Generator, white: float = 0.3) -> Recipe:
    """Draw one degradation from the training distribution; white is the share of plain AWGN
    (the rest keeps the 5 : 20 : 45 split of clean, channel and camera noise)."""
    rest = (1.0 - white) / 0.7
    noise = rng.choice(NOISES, p=[0.05 * rest, white, 0.2 * rest, 0.45 * rest])
    r = Recipe(noise=str(noise))
    if noise == "white":
        r = replace(r, sigma=float(rng.uniform(0, 55)))
        if rng.random() < 0.15:
            r = replace(r, jpeg=((int(rng.integers(50, 96)), int(rng.choice([0, 2]))),))
        return r  # plain AWGN stays plain: the standard benchmark must not regress
    if noise == "channel":
        r = replace(r, sigma=float(rng.uniform(2, 45)), mix=_random_mix(rng))
        corr = rng.choice(["none", "blur"], p=[0.4, 0.6])
    elif noise == "camera":
        gains = (float(rng.uniform(1.0, 2.5)), 1.0, float(rng.uniform(1.0, 2.5)))
        r = replace(
            r,
            shot=float(np.exp(rng.uniform(np.log(2e-4), np.log(4e-2)))),
            read=float(np.exp(rng.uniform(np.log(5e-4), np.log(3e-2)))),
            gains=gains,
        )
        corr = rng.choice(CORRELATIONS, p=[0.25, 0.5, 0.25])
    else:
        corr = "none"
    r = replace(r, correlation=str(corr))
    if corr == "blur":
        r = replace(r, blur=float(rng.uniform(0.4, 1.3)))
    elif corr == "bayer":
        r = replace(r, bayer_offset=(int(rng.integers(2)), int(rng.integers(2))))
    if noise != "none":
        resize = rng.choice(RESIZES, p=[0.7, 0.15, 0.15])
        if resize != "none":
            r = replace(r, resize=str(resize), factor=float(rng.uniform(1.2, 2.0)))
    njpeg = rng.choice([0, 1, 2], p=[0.35, 0.4, 0.25] if noise != "none" else [0.3, 0.45, 0.25])
    qs = sorted((int(rng.integers(40, 96)) for _ in range(njpeg)), reverse=True)
    r = replace(r, jpeg=tuple((q, int(rng.choice([0, 2], p=[0.3, 0.7]))) for q in qs))
    return r


# Fixed conditions for evaluation: the benchmark's AWGN and camera/web cases of every kind above.
CONDITIONS: dict[str, Recipe] = {
    "awgn15": Recipe(sigma=15.0),
    "awgn25": Recipe(sigma=25.0),
    "awgn50": Recipe(sigma=50.0),
    "camera-jpeg": Recipe(
        noise="camera", shot=0.01, read=0.004, gains=(1.9, 1.0, 1.6), correlation="bayer", jpeg=((90, 2),)
    ),
    "camera-dark-raw": Recipe(noise="camera", shot=0.002, read=0.02, gains=(2.2, 1.0, 1.4), correlation="bayer"),
    "phone-double-jpeg": Recipe(
        noise="channel",
        sigma=18.0,
        mix=((0.9, 0.3, 0.1), (0.2, 0.7, 0.1), (0.1, 0.4, 1.2)),
        correlation="blur",
        blur=0.7,
        jpeg=((85, 2), (70, 2)),
    ),
    "web-resized": Recipe(
        noise="camera",
        shot=0.02,
        read=0.003,
        gains=(1.5, 1.0, 2.0),
        correlation="bayer",
        resize="up_after",
        factor=1.5,
        jpeg=((80, 2),),
    ),
}


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def _resize(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bicubic resize of a float (H, W, C) image, channel by channel (Pillow's float mode)."""
    chans = [
        np.asarray(Image.fromarray(x[..., c].astype(np.float32), "F").resize((w, h), Image.BICUBIC))
        for c in range(x.shape[2])
    ]
    return np.stack(chans, axis=2)


_KERNEL_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
_KERNEL_G = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4


def bayer_demosaic(field: np.ndarray, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Keep one channel per pixel as an RGGB mosaic (shifted by offset) sees it, then fill the
    rest by bilinear demosaicing: the neighbouring pixels' values become correlated."""
    h, w, _ = field.shape
    yy, xx = np.mgrid[0:h, 0:w]
    yy, xx = (yy + offset[0]) % 2, (xx + offset[1]) % 2
    masks = [(yy == 0) & (xx == 0), (yy + xx) == 1, (yy == 1) & (xx == 1)]
    out = np.empty_like(field)
    for c, (m, k) in enumerate(zip(masks, (_KERNEL_RB, _KERNEL_G, _KERNEL_RB), strict=True)):
        out[..., c] = ndimage.convolve(field[..., c] * m, k, mode="mirror")
    return out


def _correlate(noise: np.ndarray, r: Recipe) -> np.ndarray:
    if r.correlation == "bayer":
        return bayer_demosaic(noise, r.bayer_offset)
    if r.correlation == "blur":
        before = noise.std() + 1e-12
        noise = np.stack([ndimage.gaussian_filter(noise[..., c], r.blur) for c in range(3)], axis=2)
        return noise * (before / (noise.std() + 1e-12))  # the level stays the recipe's
    return noise


def _add_noise(x: np.ndarray, r: Recipe, rng: np.random.Generator) -> np.ndarray:
    """x: float (H, W, 3) sRGB in [0, 1] -> noisy float sRGB (not yet clipped or rounded)."""
    if r.noise == "none":
        return x
    n = rng.standard_normal(x.shape).astype(np.float32)
    if r.noise == "white":
        return x + n * (r.sigma / 255)
    if r.noise == "channel":
        return x + _correlate(n @ np.asarray(r.mix, np.float32).T, r) * (r.sigma / 255)
    # camera: raw signal = linear light / white-balance gain; variance shot * signal + read^2
    gains = np.asarray(r.gains, np.float32)
    raw = srgb_to_linear(x) / gains
    std = np.sqrt(r.shot * raw + r.read**2)
    noisy_raw = raw + _correlate(n * std, r)
    return linear_to_srgb(noisy_raw * gains)


def _jpeg(img: np.ndarray, quality: int, subsampling: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def apply(clean: np.ndarray, r: Recipe, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """clean: uint8 (H, W, 3). Returns (target, noisy), both uint8 (H, W, 3): the target is the
    clean image as the resizing left it (what a perfect denoiser could give back)."""
    x = clean.astype(np.float32) / 255
    h, w = x.shape[:2]
    if r.resize == "down_after":
        # a larger noisy photograph shrunk: noise is averaged down and correlated
        big = (max(1, round(h * r.factor)), max(1, round(w * r.factor)))
        up = np.clip(_resize(x, *big), 0, 1)
        target = np.clip(_resize(up, h, w), 0, 1)
        noisy = _resize(_add_noise(up, r, rng), h, w)
    elif r.resize == "up_after":
        # a smaller noisy photograph enlarged: each noise grain spreads over several pixels
        small = (max(1, round(h / r.factor)), max(1, round(w / r.factor)))
        down = np.clip(_resize(x, *small), 0, 1)
        target = np.clip(_resize(down, h, w), 0, 1)
        noisy = _resize(_add_noise(down, r, rng), h, w)
    else:
        target, noisy = x, _add_noise(x, r, rng)
    out = to_uint8(noisy)
    for q, sub in r.jpeg:
        out = _jpeg(out, q, sub)
    return to_uint8(target) if r.resize != "none" else clean.copy(), out
