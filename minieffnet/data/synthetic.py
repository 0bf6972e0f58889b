"""A built-in, CIFAR-sized synthetic data set ("shapes and stripes"): no download needed.

Ten classes of 32x32 RGB images, made deterministically from a seed. It is the default data
of the quick-start command and of the scaling experiments, so it is built to be *hard in the
ways scaling matters*: telling the classes apart needs both coarse shape (depth / receptive
field) and single-pixel detail (input resolution), amid clutter (capacity).

Classes
    label ``y = 2 * family + stripes``, names ``"<family>-<stripes>"``:
    family  0..4 = disc, square, triangle, ring, cross (the coarse shape of the object);
    stripes 0..1 = horizontal, vertical (the orientation of a fine square-wave texture inside
    the object, period 2 to 2.5 pixels). The two classes of one family differ *only* in that
    texture, which a 2x downsampling (e.g. bilinear 32 -> 16) all but erases: at low
    resolution the pairs become indistinguishable.

How one image is drawn (sizes in pixels; pixel centres at integer coordinates 0..31;
``U(a, b)`` uniform, ``N(m, s)`` normal; a "texture" is a grey square wave ``+-A`` along y
(horizontal stripes) or x (vertical), period ``U(2, 2.5)``, phase ``U(0, 1)`` periods,
amplitude ``A ~ U(20, 45)``, fixed in the image frame):
    1. Background: a linear gradient between two colours, each channel ``U(30, 225)``, along
       a direction ``U(0, 2 pi)``.
    2. Clutter lines: 2 infinite lines through ``U(0, 32)^2`` at angles ``U(0, pi)``, about
       1 px wide (coverage ``clip(1 - distance, 0, 1)``), colour ``U(0, 255)^3``.
    3. Clutter patches: 2 axis-aligned squares of side ``U(4, 7)`` centred in ``U(0, 32)^2``,
       colour ``U(0, 255)^3``, with a texture of random orientation: global stripe
       statistics alone mislead; the texture must be read *on the object*.
    4. A decoy: a small plain shape of a random family (size ``R ~ U(3.5, 5.5)``, centre
       ``U(0, 32)^2``, rotation ``U(0, 2 pi)``, colour ``U(0, 255)^3``): the class is the
       shape of the *large* object, not of any shape in view.
    5. The object: centre ``15.5 + U(-6, 6)`` per axis, size ``R ~ U(6, 11)``, rotation
       ``U(0, 2 pi)``. Shapes, drawn with anti-aliased edges (coverage ``clip(0.5 - sdf, 0,
       1)`` of a signed distance): disc of radius R; square of half-side 0.85 R;
       equilateral triangle of circumradius 1.1 R; ring between radii 0.44 R and R;
       plus-shaped cross of arm length R and half-width 0.3 R. Fill colour in HSV: hue
       ``family / 5 + N(0, 0.1)`` (a weak, overlapping colour prior per family), saturation
       ``U(0.45, 1)``, value ``U(0.4, 1)``; plus the class's texture.
    6. Noise: i.i.d. integers uniform on -20..20 (std 11.8) per pixel and channel; clip to
       0..255; round to uint8.

Labels are balanced: every consecutive group of 10 images holds each class once, in random
order. Randomness: images are made in blocks of 1000; block ``b`` of split ``s`` (train 0,
test 1) draws everything from ``numpy.random.default_rng(SeedSequence([seed, s, b]))``, so
image ``i`` depends only on ``(seed, split, i)``: a smaller set is a prefix of a larger one,
and the test set does not change with ``n_train``. Generation is vectorised over each block
(about 0.1 s per 1000 images on one core).

Difficulty (seed 0, 10,000 train / 2,000 test images): nearest class mean on raw pixels
scores 0.25 (chance 0.10; its family is right 0.51 of the time). For calibration only, a
plain 5-layer CNN (PyTorch, Adam, 6 epochs, no augmentation) reached 0.80 / 0.87 / 0.88 test
accuracy with 8 / 16 / 32 base channels at 32 px; 0.82 with the images resized to 24 px and
back, and 0.44 at 16 px, where the family is still found (0.85) but the stripes are chance.
"""
from __future__ import annotations

import numpy as np

from .dataset import Dataset, channel_stats

IMAGE_SIZE = 32
FAMILIES = ("disc", "square", "triangle", "ring", "cross")
STRIPES = ("horizontal", "vertical")
CLASS_NAMES = tuple(f"{family}-{stripes}" for family in FAMILIES for stripes in STRIPES)
NUM_CLASSES = len(CLASS_NAMES)
SPLITS = {"train": 0, "test": 1}
BLOCK = 1000  # images per independently seeded block; a multiple of NUM_CLASSES

_NOISE_MAX = 20  # noise is uniform on -20..20: standard deviation 11.8
_N_LINES = 2
_N_PATCHES = 2
_PERIOD = (2.0, 2.5)  # stripe period range, pixels
_AMPLITUDE = (20.0, 45.0)  # stripe amplitude range, 0..255 scale

# Pixel-centre coordinates, shared by every block: _YY[i, j] = i (row), _XX[i, j] = j (column).
_YY, _XX = np.meshgrid(np.arange(IMAGE_SIZE, dtype=np.float32),
                       np.arange(IMAGE_SIZE, dtype=np.float32), indexing="ij")


def _col(v: np.ndarray) -> np.ndarray:
    """(m,) per-image values -> (m, 1, 1) float32, to broadcast against (m, H, W) images."""
    return np.asarray(v, dtype=np.float32)[:, None, None]


def _stripes(orient: np.ndarray, period: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Square-wave texture, +-1: (m,) orientation (0 = horizontal stripes, varying along y;
    1 = vertical, along x), period in pixels, phase in periods -> (m, H, W) float32."""
    coord = np.where(_col(orient) == 0, _YY, _XX)
    wave = np.cos(np.float32(2 * np.pi) * (coord / _col(period) - _col(phase)))
    return np.where(wave >= 0, np.float32(1), np.float32(-1))


def _over(canvas: np.ndarray, coverage: np.ndarray, colour: np.ndarray, texture: np.ndarray | None = None) -> None:
    """Alpha-composite in place: canvas (3, m, H, W) <- colour where coverage (m, H, W) in 0..1.

    colour: (m, 3) one colour per image; texture: optional (m, H, W) grey offset added to it.
    The canvas is channel-first so that every broadcast runs over contiguous H*W rows.
    """
    delta = colour.T.astype(np.float32)[:, :, None, None] - canvas
    if texture is not None:
        delta += texture
    delta *= coverage
    canvas += delta


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(m,) hue (any real, taken mod 1), saturation, value in 0..1 -> (m, 3) RGB in 0..255."""
    h6 = np.mod(h, 1.0) * 6.0
    # The standard piecewise-linear HSV channels, written without branches.
    k = np.mod(np.array([5.0, 3.0, 1.0])[None, :] + h6[:, None], 6.0)
    rgb = v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return 255.0 * rgb


def _shape_coverage(family: np.ndarray, centre: np.ndarray, angle: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage in 0..1, (m, H, W) float32, of one shape per image.

    family: (m,) in 0..4; centre: (m, 2) as (x, y); angle: (m,) rotation; radius: (m,) size R.
    """
    dx, dy = _XX - _col(centre[:, 0]), _YY - _col(centre[:, 1])
    cos, sin = _col(np.cos(angle)), _col(np.sin(angle))
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    return np.clip(0.5 - _shape_sdf(family, u, v, radius), 0, 1)


def _shape_sdf(family: np.ndarray, u: np.ndarray, v: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) of each family's shape in its own rotated frame.

    family: (m,) in 0..4; u, v: (m, H, W) coordinates relative to the object centre, already
    rotated; radius: (m,). Returns (m, H, W) float32.
    """
    sdf = np.empty_like(u)
    r = _col(radius)
    dist = np.hypot(u, v)
    for f in range(len(FAMILIES)):
        sel = family == f
        if not sel.any():
            continue
        uu, vv, rr, dd = u[sel], v[sel], r[sel], dist[sel]
        if FAMILIES[f] == "disc":
            d = dd - rr
        elif FAMILIES[f] == "square":
            d = np.maximum(np.abs(uu), np.abs(vv)) - 0.85 * rr
        elif FAMILIES[f] == "triangle":
            # Intersection of three half-planes at the inradius (half the circumradius 1.1 R).
            d = np.full_like(uu, -np.inf)
            for k in range(3):
                a = np.pi / 2 + 2 * np.pi * k / 3
                d = np.maximum(d, uu * np.float32(np.cos(a)) + vv * np.float32(np.sin(a)))
            d = d - 0.55 * rr
        elif FAMILIES[f] == "ring":
            d = np.abs(dd - 0.72 * rr) - 0.28 * rr
        else:  # cross: union of two bars of half-length R and half-width 0.3 R
            w = 0.3 * rr
            d = np.minimum(np.maximum(np.abs(uu) - rr, np.abs(vv) - w),
                           np.maximum(np.abs(uu) - w, np.abs(vv) - rr))
        sdf[sel] = d
    return sdf


def _render_block(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one block's parameters (always for BLOCK images, so the first ``m`` do not depend
    on ``m``) and render its first ``m`` images: (m, 32, 32, 3) uint8 and (m,) int64 labels."""
    B = BLOCK
    labels = rng.permuted(np.tile(np.arange(NUM_CLASSES), (B // NUM_CLASSES, 1)), axis=1).ravel()
    bg_colours = rng.uniform(30, 225, (2, B, 3))
    bg_angle = rng.uniform(0, 2 * np.pi, B)
    line_point = rng.uniform(0, IMAGE_SIZE, (_N_LINES, B, 2))
    line_angle = rng.uniform(0, np.pi, (_N_LINES, B))
    line_colour = rng.uniform(0, 255, (_N_LINES, B, 3))
    patch_centre = rng.uniform(0, IMAGE_SIZE, (_N_PATCHES, B, 2))
    patch_side = rng.uniform(4, 7, (_N_PATCHES, B))
    patch_colour = rng.uniform(0, 255, (_N_PATCHES, B, 3))
    patch_orient = rng.integers(0, 2, (_N_PATCHES, B))
    patch_period = rng.uniform(*_PERIOD, (_N_PATCHES, B))
    patch_phase = rng.uniform(0, 1, (_N_PATCHES, B))
    patch_amp = rng.uniform(*_AMPLITUDE, (_N_PATCHES, B))
    decoy_family = rng.integers(0, len(FAMILIES), B)
    decoy_centre = rng.uniform(0, IMAGE_SIZE, (B, 2))
    decoy_radius = rng.uniform(3.5, 5.5, B)
    decoy_angle = rng.uniform(0, 2 * np.pi, B)
    decoy_colour = rng.uniform(0, 255, (B, 3))
    centre = (IMAGE_SIZE - 1) / 2 + rng.uniform(-6, 6, (B, 2))
    radius = rng.uniform(6, 11, B)
    angle = rng.uniform(0, 2 * np.pi, B)
    hue = (labels // 2) / len(FAMILIES) + rng.normal(0, 0.1, B)
    sat = rng.uniform(0.45, 1, B)
    val = rng.uniform(0.4, 1, B)
    obj_period = rng.uniform(*_PERIOD, B)
    obj_phase = rng.uniform(0, 1, B)
    obj_amp = rng.uniform(*_AMPLITUDE, B)
    # Noise last and only for the m images rendered: a prefix of the same stream. Uniform
    # integers, not Gaussian: 10x cheaper to draw, and as good at masking fine detail.
    noise = rng.integers(-_NOISE_MAX, _NOISE_MAX + 1, (m, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.int8)

    labels = labels[:m]
    c = (IMAGE_SIZE - 1) / 2
    # 1. background gradient, t in about [0, 1] along the gradient direction
    t = ((_XX - c) * _col(np.cos(bg_angle[:m])) + (_YY - c) * _col(np.sin(bg_angle[:m]))) / (IMAGE_SIZE - 1) + 0.5
    t = np.clip(t, 0, 1)
    c0 = bg_colours[0, :m].T.astype(np.float32)[:, :, None, None]
    c1 = bg_colours[1, :m].T.astype(np.float32)[:, :, None, None]
    canvas = t * (c1 - c0)  # (3, m, H, W): channel-first while drawing, see _over
    canvas += c0
    # 2. clutter lines
    for k in range(_N_LINES):
        px, py = _col(line_point[k, :m, 0]), _col(line_point[k, :m, 1])
        dist = np.abs((_XX - px) * _col(np.sin(line_angle[k, :m])) - (_YY - py) * _col(np.cos(line_angle[k, :m])))
        _over(canvas, np.clip(1 - dist, 0, 1), line_colour[k, :m])
    # 3. striped clutter patches
    for k in range(_N_PATCHES):
        half = _col(patch_side[k, :m] / 2)
        inside = ((np.abs(_XX - _col(patch_centre[k, :m, 0])) <= half)
                  & (np.abs(_YY - _col(patch_centre[k, :m, 1])) <= half)).astype(np.float32)
        texture = _col(patch_amp[k, :m]) * _stripes(patch_orient[k, :m], patch_period[k, :m], patch_phase[k, :m])
        _over(canvas, inside, patch_colour[k, :m], texture)
    # 4. a small plain decoy shape of any family
    coverage = _shape_coverage(decoy_family[:m], decoy_centre[:m], decoy_angle[:m], decoy_radius[:m])
    _over(canvas, coverage, decoy_colour[:m])
    # 5. the object
    coverage = _shape_coverage(labels // 2, centre[:m], angle[:m], radius[:m])
    texture = _col(obj_amp[:m]) * _stripes(labels % 2, obj_period[:m], obj_phase[:m])
    _over(canvas, coverage, _hsv_to_rgb(hue[:m], sat[:m], val[:m]), texture)
    # 6. sensor noise, then quantise
    pixels = canvas.transpose(1, 2, 3, 0) + noise
    np.clip(pixels, 0, 255, out=pixels)
    images = np.rint(pixels, out=pixels).astype(np.uint8)
    return images, labels.astype(np.int64)


def make_synthetic(n: int, seed: int = 0, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` images of the synthetic set (procedure in the module docstring).

    n: number of images (>= 0); seed: any non-negative int; split: ``"train"`` or ``"test"``
    (independent streams). Returns ``(images, labels)``: (n, 32, 32, 3) uint8 HWC RGB and
    (n,) int64 in 0..9. Image ``i`` depends only on ``(seed, split, i)``.
    """
    if split not in SPLITS:
        raise ValueError(f"make_synthetic: split must be one of {tuple(SPLITS)}, got {split!r}")
    if int(n) != n or n < 0:
        raise ValueError(f"make_synthetic: n must be a non-negative integer, got {n!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"make_synthetic: seed must be a non-negative integer, got {seed!r}")
    n = int(n)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    for block, start in enumerate(range(0, n, BLOCK)):
        m = min(BLOCK, n - start)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS[split], block]))
        images[start:start + m], labels[start:start + m] = _render_block(rng, m)
    return images, labels


def load_synthetic(n_train: int = 10000, n_test: int = 2000, seed: int = 0) -> tuple[Dataset, Dataset]:
    """The built-in synthetic data set as ``(train, test)`` Datasets.

    n_train, n_test: set sizes (each a prefix of a fixed stream; see the module docstring).
    seed: selects the stream. Both Datasets carry the *training* split's channel mean/std.
    Images: (N, 32, 32, 3) uint8; labels (N,) int64 in 0..9; class names ``CLASS_NAMES``.
    """
    x_train, y_train = make_synthetic(n_train, seed, "train")
    x_test, y_test = make_synthetic(n_test, seed, "test")
    mean, std = channel_stats(x_train) if n_train else (None, None)
    train = Dataset(x_train, y_train, CLASS_NAMES, f"synthetic-train(seed={seed})", mean, std)
    test = Dataset(x_test, y_test, CLASS_NAMES, f"synthetic-test(seed={seed})", mean, std)
    return train, test
