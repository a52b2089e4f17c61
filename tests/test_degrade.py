"""The denoiser's degradation pipeline (training/degrade.py): seeded, each kind doing what it says."""

import numpy as np
import pytest

pytest.importorskip("scipy")

from conftest import smooth_image  # noqa: E402

from training import degrade  # noqa: E402

CLEAN = smooth_image(96, 64, seed=3)


def noise_of(recipe: degrade.Recipe, img: np.ndarray = CLEAN, seed: int = 0) -> np.ndarray:
    target, noisy = degrade.apply(img, recipe, np.random.default_rng(seed))
    assert target.shape == noisy.shape == img.shape and noisy.dtype == np.uint8
    return noisy.astype(np.float64) - target


def test_the_same_seed_gives_the_same_degradation_and_another_seed_another():
    recipes = [degrade.sample(np.random.default_rng(7)) for _ in range(2)]
    assert recipes[0] == recipes[1]
    a = degrade.apply(CLEAN, recipes[0], np.random.default_rng(1))
    b = degrade.apply(CLEAN, recipes[0], np.random.default_rng(1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    draws = {degrade.sample(np.random.default_rng(s)) for s in range(200)}
    assert len(draws) > 190  # only 'no noise, no JPEG' can repeat
    assert {r.noise for r in draws} == set(degrade.NOISES)
    assert {r.correlation for r in draws} == set(degrade.CORRELATIONS)
    assert {r.resize for r in draws} == set(degrade.RESIZES)
    assert {len(r.jpeg) for r in draws} == {0, 1, 2}


def test_white_noise_has_its_sigma_and_no_noise_leaves_the_image_alone():
    flat = np.full((128, 128, 3), 128, np.uint8)
    n = noise_of(degrade.Recipe(sigma=20.0), flat)
    assert abs(n.std() - 20) < 0.5
    assert abs(np.corrcoef(n[..., 0].ravel(), n[..., 1].ravel())[0, 1]) < 0.05
    target, noisy = degrade.apply(CLEAN, degrade.Recipe(noise="none"), np.random.default_rng(0))
    assert np.array_equal(target, CLEAN) and np.array_equal(noisy, CLEAN)


def test_colour_noise_follows_its_channel_mix():
    flat = np.full((128, 128, 3), 128, np.uint8)
    mix = ((1.0, 0.0, 0.0), (0.9, 0.3, 0.0), (0.0, 0.0, 0.2))
    n = noise_of(degrade.Recipe(noise="channel", sigma=20.0, mix=mix), flat).reshape(-1, 3)
    assert np.corrcoef(n[:, 0], n[:, 1])[0, 1] > 0.8
    assert n[:, 2].std() < 0.4 * n[:, 0].std()


def test_camera_noise_grows_with_the_signal_in_linear_light():
    ramp = np.repeat(np.linspace(20, 235, 128).astype(np.uint8)[None, :, None], 128, axis=0).repeat(3, axis=2)
    target, noisy = degrade.apply(
        ramp, degrade.Recipe(noise="camera", shot=0.02, read=0.0005), np.random.default_rng(0)
    )
    lin = degrade.srgb_to_linear(noisy / 255) - degrade.srgb_to_linear(target / 255)
    dark, bright = lin[:, :32].std(), lin[:, -32:].std()
    x_dark, x_bright = (degrade.srgb_to_linear(target[:, s] / 255).mean() for s in (slice(0, 32), slice(-32, None)))
    # shot noise: variance proportional to the signal
    assert bright / dark == pytest.approx(np.sqrt(x_bright / x_dark), rel=0.25)
    # read noise alone is flat in linear light, so the sRGB curve makes it loudest in the shadows
    n = noise_of(degrade.Recipe(noise="camera", shot=0.0, read=0.01), ramp)
    assert n[:, :32].std() > 3 * n[:, -32:].std()


def test_bayer_demosaic_and_blur_correlate_neighbouring_pixels():
    flat = np.full((128, 128, 3), 128, np.uint8)
    white = degrade.Recipe(noise="channel", sigma=15.0)

    def neighbour_corr(n: np.ndarray) -> float:
        return float(np.corrcoef(n[:, :-1, 1].ravel(), n[:, 1:, 1].ravel())[0, 1])

    assert abs(neighbour_corr(noise_of(white, flat))) < 0.05
    assert (
        neighbour_corr(noise_of(degrade.Recipe(noise="channel", sigma=15.0, correlation="blur", blur=1.0), flat)) > 0.5
    )
    assert (
        neighbour_corr(noise_of(degrade.Recipe(noise="camera", shot=0.01, read=0.01, correlation="bayer"), flat)) > 0.2
    )


def test_jpeg_and_resizing_change_the_noise_not_the_target_size():
    r = degrade.Recipe(sigma=10.0, jpeg=((60, 2), (50, 2)))
    n = noise_of(r)
    assert 0 < n.std() < 10
    for resize in ("down_after", "up_after"):
        target, noisy = degrade.apply(
            CLEAN, degrade.Recipe(sigma=20.0, resize=resize, factor=1.5), np.random.default_rng(0)
        )
        assert target.shape == noisy.shape == CLEAN.shape
        # the target is the resized clean image, close to the original but not equal
        assert 0 < np.abs(target.astype(int) - CLEAN).mean() < 4
    # enlarging a noisy photograph spreads each grain: less noise per pixel, more correlation
    n = noise_of(degrade.Recipe(sigma=20.0, resize="up_after", factor=2.0))
    assert n.std() < 20 and np.corrcoef(n[:, :-1].ravel(), n[:, 1:].ravel())[0, 1] > 0.5


def test_evaluation_conditions_cover_every_kind():
    conds = degrade.CONDITIONS.values()
    assert {"white", "channel", "camera"} <= {c.noise for c in conds}
    assert {"bayer", "blur"} <= {c.correlation for c in conds}
    assert any(len(c.jpeg) == 2 for c in conds) and any(c.resize != "none" for c in conds)
    assert all(c.describe() for c in conds)
