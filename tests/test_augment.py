"""Image augmentation: every transform against small images computed by hand, Keras's fill modes,
Keras's ranges for the random draws, and determinism per (seed, epoch, batch)."""
import numpy as np
import pytest

from nnspec.augment import Augmenter, affine_matrices, affine_matrix, warp
from nnspec.ir.training import ImageAugmentation

SQUARE = np.arange(9, dtype=np.float32).reshape(3, 3)  # 0 1 2 / 3 4 5 / 6 7 8
ROW = np.array([[1, 2, 3, 4]], np.float32)  # a b c d


def transform(image, mode="nearest", cval=0.0, **params):
    h, w = image.shape
    return warp(image[None, :, :, None], affine_matrix(h, w, **params)[None], mode, cval)[0, :, :, 0]


def test_rotation_by_90_degrees_turns_the_pixels():
    # output (0, 0) shows the input at centre + R(-1, -1) = (1, 1) + (1, -1) = (2, 0): a clockwise quarter turn
    np.testing.assert_array_equal(transform(SQUARE, theta=90), [[6, 3, 0], [7, 4, 1], [8, 5, 2]])
    np.testing.assert_array_equal(transform(SQUARE, theta=180), SQUARE[::-1, ::-1])
    np.testing.assert_array_equal(transform(SQUARE, theta=-90), [[2, 5, 8], [1, 4, 7], [0, 3, 6]])


@pytest.mark.parametrize("mode, left, right", [
    # Keras's documentation of fill_mode, for a shift of two columns either way (k = cval = -1):
    ("constant", [-1, -1, 1, 2], [3, 4, -1, -1]),  # kkkkkkkk|abcd|kkkkkkkk
    ("nearest", [1, 1, 1, 2], [3, 4, 4, 4]),  # aaaaaaaa|abcd|dddddddd
    ("reflect", [2, 1, 1, 2], [3, 4, 4, 3]),  # abcddcba|abcd|dcbaabcd
    ("wrap", [3, 4, 1, 2], [3, 4, 1, 2]),  # abcdabcd|abcd|abcdabcd
])
def test_shifts_fill_the_uncovered_pixels_as_keras_documents(mode, left, right):
    np.testing.assert_array_equal(transform(ROW, mode, cval=-1, ty=-2)[0], left)
    np.testing.assert_array_equal(transform(ROW, mode, cval=-1, ty=2)[0], right)


def test_fractional_shift_interpolates_bilinearly():
    np.testing.assert_allclose(transform(ROW, "nearest", ty=0.5)[0], [1.5, 2.5, 3.5, 4.0])
    np.testing.assert_allclose(transform(ROW, "constant", cval=9, ty=0.5)[0], [1.5, 2.5, 3.5, 9.0])
    column = ROW.T  # a shift along rows (tx) moves the column
    np.testing.assert_array_equal(transform(column, "nearest", tx=1)[:, 0], [2, 3, 4, 4])


def test_zoom_about_the_centre():
    # zoom 0.5 shows the middle, magnified: output (0, 0) <- (0.5, 0.5), the mean of 0, 1, 3 and 4
    np.testing.assert_allclose(transform(SQUARE, zx=0.5, zy=0.5), [[2, 2.5, 3], [3.5, 4, 4.5], [5, 5.5, 6]])
    # zoom 2 shows twice as much: every pixel but the centre maps outside
    expected = np.full((3, 3), -1.0)
    expected[1, 1] = 4
    np.testing.assert_array_equal(transform(SQUARE, "constant", cval=-1, zx=2, zy=2), expected)
    # zx scales rows, zy columns
    np.testing.assert_allclose(transform(SQUARE, zx=0.5), [[1.5, 2.5, 3.5], [3, 4, 5], [4.5, 5.5, 6.5]])


def test_shear_maps_columns_along_rows():
    # input = centre + [[1, -sin s], [0, cos s]] (output - centre); on the linear image 10 r + c bilinear
    # sampling is exact, so each pixel that maps inside reads 10 r_in + c_in
    image = np.add.outer(10 * np.arange(5), np.arange(5)).astype(np.float32)
    out = transform(image, "constant", cval=-1, shear_deg=30)
    s, c = np.sin(np.pi / 6), np.cos(np.pi / 6)
    assert out[2, 3] == pytest.approx(10 * (2 - s * 1) + (2 + c * 1), abs=1e-5)  # 17.866
    assert out[1, 0] == pytest.approx(10 * (1 + s * 2) + (2 - c * 2), abs=1e-5)  # r 2.0, c 0.268: 20.268
    assert out[0, 4] == -1  # r_in = -1: outside
    np.testing.assert_allclose(out[:, 2], image[:, 2])  # the centre column does not move


def test_composition_follows_keras_order():
    # Keras: input = centre + rotation @ shift @ ... (output - centre): the shift acts first, on output
    # coordinates. Output (0, 0): (-1, -1) + (0, 1) = (-1, 0); turned by 90 degrees: (0, -1); plus the
    # centre: input (1, 0), which holds 3. So: the turned image read one column to the right.
    both = transform(SQUARE, "constant", cval=-1, theta=90, ty=1)
    np.testing.assert_array_equal(both, [[3, 0, -1], [4, 1, -1], [5, 2, -1]])
    turned = transform(SQUARE, theta=90)
    np.testing.assert_array_equal(both, transform(turned, "constant", cval=-1, ty=1))


def test_flips_and_channels():
    rgb = np.arange(2 * 3 * 2 * 3, dtype=np.float32).reshape(2, 3, 2, 3)  # two 3x2 images, 3 channels
    aug = Augmenter(ImageAugmentation(horizontal_flip=True, vertical_flip=True, seed=1))
    params = aug.draw(2, 3, 2, np.random.default_rng(0))
    params["flip_h"] = np.array([True, False])
    params["flip_v"] = np.array([False, True])
    out = aug.apply(rgb, params)
    np.testing.assert_array_equal(out[0], rgb[0, :, ::-1])
    np.testing.assert_array_equal(out[1], rgb[1, ::-1])
    gray = rgb[..., 0]  # (n, h, w) batches work too
    np.testing.assert_array_equal(aug.apply(gray, params)[0], gray[0, :, ::-1])


def test_random_draws_follow_keras_ranges():
    cfg = ImageAugmentation(rotation_range=20, width_shift_range=0.25, height_shift_range=3, shear_range=10,
                            zoom_range=0.2, horizontal_flip=True)
    p = Augmenter(cfg).draw(4000, 10, 8, np.random.default_rng(0))
    assert np.abs(p["theta"]).max() <= 20 and np.abs(p["theta"]).max() > 19
    assert np.abs(p["ty"]).max() <= 0.25 * 8 and np.abs(p["ty"]).max() > 1.9  # a fraction of the width
    assert np.abs(p["tx"]).max() <= 3 and np.abs(p["tx"]).max() > 2.9  # >= 1: pixels
    assert p["zx"].min() >= 0.8 and p["zy"].max() <= 1.2
    assert 0.45 < p["flip_h"].mean() < 0.55 and not p["flip_v"].any()
    lo_hi = Augmenter(ImageAugmentation(zoom_range=(0.5, 0.6))).draw(100, 4, 4, np.random.default_rng(0))
    assert lo_hi["zx"].min() >= 0.5 and lo_hi["zx"].max() <= 0.6


def test_each_batch_is_drawn_from_seed_epoch_and_batch():
    aug = Augmenter(ImageAugmentation(rotation_range=30, zoom_range=0.2, horizontal_flip=True), seed=7)
    x = np.random.default_rng(0).random((5, 6, 6, 1)).astype(np.float32)
    a = aug([x], epoch=2, batch=3)[0]
    np.testing.assert_array_equal(a, aug([x], epoch=2, batch=3)[0])
    assert not np.array_equal(a, aug([x], epoch=2, batch=4)[0])
    assert not np.array_equal(a, aug([x], epoch=3, batch=3)[0])
    assert a.shape == x.shape and a.dtype == np.float32
    assert Augmenter(ImageAugmentation(seed=1)).seed == 1 and Augmenter(ImageAugmentation(), seed=5).seed == 5
    untouched = Augmenter(ImageAugmentation())([x], 0, 0)[0]
    np.testing.assert_array_equal(untouched, x)


def test_a_replicas_shard_is_transformed_as_in_the_whole_batch():
    """A data-parallel replica augments only its rows, with the draws of the whole batch."""
    aug = Augmenter(ImageAugmentation(rotation_range=30, zoom_range=0.2, horizontal_flip=True,
                                      channel_shift_range=0.3), seed=7)
    x = np.random.default_rng(0).random((7, 6, 6, 2)).astype(np.float32)
    whole = aug([x], epoch=1, batch=2)[0]
    for rows in (slice(0, 3), slice(3, 7)):
        np.testing.assert_array_equal(aug([x[rows]], 1, 2, rows, len(x))[0], whole[rows])
    assert not np.array_equal(aug([x[3:7]], 1, 2)[0], whole[3:7])  # drawn for 4 alone: other draws


def test_batched_matrices_equal_one_by_one():
    rng = np.random.default_rng(0)
    draws = [rng.uniform(-30, 30, 6), rng.uniform(-2, 2, 6), rng.uniform(-2, 2, 6), rng.uniform(-10, 10, 6),
             rng.uniform(0.8, 1.2, 6), rng.uniform(0.8, 1.2, 6)]
    one_by_one = np.stack([affine_matrix(7, 9, *[d[i] for d in draws]) for i in range(6)])
    np.testing.assert_allclose(affine_matrices(7, 9, *draws), one_by_one, atol=1e-12)


def test_channel_shift_adds_one_intensity_per_image_clipped_to_its_range():
    """Keras's apply_channel_shift: x + intensity in every channel, clipped to the image's min and max."""
    rng = np.random.default_rng(3)
    rgb = rng.random((2, 4, 3, 3)).astype(np.float32)
    aug = Augmenter(ImageAugmentation(channel_shift_range=0.5))
    params = aug.draw(2, 4, 3, np.random.default_rng(0))
    assert 0 < np.abs(params["channel_shift"]).max() <= 0.5
    params["channel_shift"] = np.array([0.25, -0.25])
    out = aug.apply(rgb, params)
    for image, shifted, intensity in zip(rgb, out, (0.25, -0.25)):
        np.testing.assert_allclose(shifted, np.clip(image + intensity, image.min(), image.max()), rtol=1e-6)
    draws = Augmenter(ImageAugmentation(channel_shift_range=20)).draw(4000, 4, 4, np.random.default_rng(0))
    assert np.abs(draws["channel_shift"]).max() <= 20 and np.abs(draws["channel_shift"]).max() > 19.9
