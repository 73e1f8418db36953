"""Keras's ImageDataGenerator transforms in numpy: random rotation, shifts, shear, zoom, channel shift and flips,
drawn per image and applied to a batch by inverse mapping with bilinear sampling.

Conventions are Keras's (keras_preprocessing's `get_random_transform` and `apply_affine_transform`):
coordinates are (row, column); an output pixel p shows the input at M p, where
M = rotation(theta) @ shift(tx, ty) @ shear(s) @ zoom(zx, zy) about the image centre, so a
positive shift tx shows the rows below (the content moves up). Shifts below 1 are fractions of
the height (tx) or width (ty), larger ones pixels; rotation and shear are in degrees; zoom_range
z draws zx and zy from [1 - z, 1 + z] (zoom > 1 shows less of the image). Flips come after the
affine transform. Points that map outside the image follow fill_mode, as Keras documents it:

    constant  kkkkkkkk|abcd|kkkkkkkk   (k = cval)
    nearest   aaaaaaaa|abcd|dddddddd
    reflect   abcddcba|abcd|dcbaabcd
    wrap      abcdabcd|abcd|abcdabcd

One difference from Keras: the centre is the exact centre ((h - 1) / 2, (w - 1) / 2); Keras's
transform_matrix_offset_center uses h / 2 + 0.5, which shifts every rotation and zoom by half a
pixel. Randomness comes from a generator per (seed, epoch, batch), so a resumed run draws exactly
what an unbroken one does.
"""
from __future__ import annotations

import numpy as np

from .ir.training import ImageAugmentation

_TAG = 0xA06  # keeps these draws apart from the shuffling and dropout generators of the same seed


def rotation(theta_deg: float) -> np.ndarray:
    t = np.deg2rad(theta_deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])


def shift(tx: float, ty: float) -> np.ndarray:
    return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], np.float64)


def shear(shear_deg: float) -> np.ndarray:
    s = np.deg2rad(shear_deg)
    return np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])


def zoom(zx: float, zy: float) -> np.ndarray:
    return np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]], np.float64)


def about_center(matrix: np.ndarray, h: int, w: int) -> np.ndarray:
    """`matrix` applied about the image centre instead of the origin."""
    cr, cc = (h - 1) / 2, (w - 1) / 2
    return shift(cr, cc) @ matrix @ shift(-cr, -cc)


def affine_matrix(h: int, w: int, theta=0.0, tx=0.0, ty=0.0, shear_deg=0.0, zx=1.0, zy=1.0) -> np.ndarray:
    """The 3x3 map from output (row, col, 1) to input coordinates, Keras's order of composition."""
    return about_center(rotation(theta) @ shift(tx, ty) @ shear(shear_deg) @ zoom(zx, zy), h, w)


def affine_matrices(h: int, w: int, theta, tx, ty, shear_deg, zx, zy) -> np.ndarray:
    """affine_matrix for n draws at once (arrays of n): (n, 3, 3), without a Python loop."""
    n = len(theta)
    t, s = np.deg2rad(theta), np.deg2rad(shear_deg)

    def stack(rows):
        out = np.zeros((n, 3, 3))
        for (i, j), v in rows.items():
            out[:, i, j] = v
        return out

    ones = np.ones(n)
    rot = stack({(0, 0): np.cos(t), (0, 1): -np.sin(t), (1, 0): np.sin(t), (1, 1): np.cos(t), (2, 2): ones})
    sh = stack({(0, 0): ones, (0, 1): -np.sin(s), (1, 1): np.cos(s), (2, 2): ones})
    zo = stack({(0, 0): zx, (1, 1): zy, (2, 2): ones})
    mv = stack({(0, 0): ones, (1, 1): ones, (2, 2): ones, (0, 2): tx, (1, 2): ty})
    return about_center(rot @ mv @ sh @ zo, h, w)


def _index(k: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Integer coordinates outside [0, n) folded back in as fill_mode says."""
    if mode == "wrap":
        return np.mod(k, n)
    if mode == "reflect":
        m = np.mod(k, 2 * n)
        return np.where(m >= n, 2 * n - 1 - m, m)
    return np.clip(k, 0, n - 1)  # nearest; constant masks the outside separately


def warp(images: np.ndarray, matrices: np.ndarray, fill_mode: str = "nearest", cval: float = 0.0) -> np.ndarray:
    """images (n, h, w, c) sampled bilinearly at matrices[i] @ (row, col, 1) for every output pixel."""
    n, h, w, _ = images.shape
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    m = matrices.reshape(n, 3, 3)
    r = m[:, 0, 0, None, None] * rows + m[:, 0, 1, None, None] * cols + m[:, 0, 2, None, None]
    c = m[:, 1, 0, None, None] * rows + m[:, 1, 1, None, None] * cols + m[:, 1, 2, None, None]
    r = np.where(np.abs(r - np.round(r)) < 1e-6, np.round(r), r)  # exact pixels stay exact (90-degree turns)
    c = np.where(np.abs(c - np.round(c)) < 1e-6, np.round(c), c)
    r0, c0 = np.floor(r), np.floor(c)
    fr, fc = (r - r0)[..., None], (c - c0)[..., None]
    r0, c0 = r0.astype(np.int64), c0.astype(np.int64)
    batch = np.arange(n)[:, None, None]
    out = np.zeros(images.shape, np.float64)
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            weight = wr * wc
            out += weight * images[batch, _index(r0 + dr, h, fill_mode), _index(c0 + dc, w, fill_mode)]
    if fill_mode == "constant":
        inside = (r >= 0) & (r <= h - 1) & (c >= 0) & (c <= w - 1)
        out = np.where(inside[..., None], out, cval)
    return out.astype(images.dtype if images.dtype.kind == "f" else np.float32)


class Augmenter:
    """Applies an ImageAugmentation to training batches: the same draw for every image input of a sample."""

    def __init__(self, cfg: ImageAugmentation, seed: int = 0):
        self.cfg = cfg
        self.seed = cfg.seed if cfg.seed is not None else seed

    def zoom_bounds(self) -> tuple[float, float]:
        z = self.cfg.zoom_range
        return (1 - z, 1 + z) if isinstance(z, (int, float)) else (float(z[0]), float(z[1]))

    def draw(self, n: int, h: int, w: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Keras's get_random_transform for n images of h x w."""
        cfg = self.cfg

        def uniform(bound):
            return rng.uniform(-bound, bound, n) if bound else np.zeros(n)

        tx = uniform(cfg.height_shift_range)
        ty = uniform(cfg.width_shift_range)
        if cfg.height_shift_range < 1:
            tx *= h
        if cfg.width_shift_range < 1:
            ty *= w
        lo, hi = self.zoom_bounds()
        zx, zy = (np.ones(n), np.ones(n)) if lo == hi == 1 else rng.uniform(lo, hi, (2, n))
        return {"theta": uniform(cfg.rotation_range), "tx": tx, "ty": ty, "shear": uniform(cfg.shear_range),
                "zx": zx, "zy": zy,
                "flip_h": (rng.random(n) < 0.5) & cfg.horizontal_flip,
                "flip_v": (rng.random(n) < 0.5) & cfg.vertical_flip,
                "channel_shift": uniform(cfg.channel_shift_range)}  # drawn last: earlier draws stay as they were

    def apply(self, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
        """x: (n, h, w, c) or (n, h, w)."""
        flat = x.ndim == 3
        images = x[..., None] if flat else x
        n, h, w = images.shape[:3]
        if any(params[k].any() for k in ("theta", "tx", "ty", "shear")) or (params["zx"] != 1).any() \
                or (params["zy"] != 1).any():
            matrices = affine_matrices(h, w, params["theta"], params["tx"], params["ty"], params["shear"],
                                       params["zx"], params["zy"])
            images = warp(images.astype(np.float32), matrices, self.cfg.fill_mode, self.cfg.cval)
        else:
            images = images.copy()
        if params["channel_shift"].any():  # Keras's apply_channel_shift: clipped to each image's own range
            low = images.min(axis=(1, 2, 3), keepdims=True)
            high = images.max(axis=(1, 2, 3), keepdims=True)
            shift = params["channel_shift"].astype(np.float32)[:, None, None, None]
            images = np.clip(images.astype(np.float32) + shift, low, high)
        images[params["flip_h"]] = images[params["flip_h"], :, ::-1]
        images[params["flip_v"]] = images[params["flip_v"], ::-1]
        return images[..., 0] if flat else images

    def __call__(self, xs: list[np.ndarray], epoch: int, batch: int, rows: slice = slice(None),
                 n: int | None = None) -> list[np.ndarray]:
        """xs: rows `rows` of a batch of n (default: all of it); the draws are the whole batch's, so a
        replica given its shard transforms each sample as one process would."""
        rng = np.random.default_rng([self.seed, epoch, batch, _TAG])
        images = [i for i, x in enumerate(xs) if x.ndim in (3, 4)]
        if not images:
            return xs
        shard, h, w = xs[images[0]].shape[:3]
        params = {k: v[rows] for k, v in self.draw(shard if n is None else n, h, w, rng).items()}
        return [self.apply(x, params) if i in images else x for i, x in enumerate(xs)]


def check_inputs(shapes: list[tuple]) -> str | None:
    """Why augmentation cannot apply to inputs of these per-sample shapes, or None when it can."""
    if not any(len(s) in (2, 3) for s in shapes):
        return (f"image augmentation needs an image input (height, width[, channels]); the model takes "
                f"{', '.join(str(tuple(s)) for s in shapes)}")
    return None
