"""Tests for minieffnet.data: Dataset, the synthetic set, CIFAR readers, transforms, loader.

CIFAR readers are tested on small archives written here in the official format (Python 2
pickles inside a .tar.gz); the real CIFAR-10 files are used when $MINIEFFNET_DATA has them.
No test touches the network: downloads go through a fake ``urlopen``.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.error
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minieffnet.data.cifar as cifar
import minieffnet.data.download as download
from minieffnet import use_backend
from minieffnet.data import (CIFAR10_CLASSES, AugmentConfig, BatchLoader, Dataset, DownloadError, channel_stats,
                             crop_flip, cutout, default_data_dir, download_url, iterate_batches, load_cifar10,
                             load_cifar100, load_synthetic, make_synthetic, random_crop_flip, resize_bilinear,
                             read_image, to_float_nchw)
from minieffnet.data.synthetic import CLASS_NAMES
from minieffnet.errors import BadFileError, BadOptionError


def _images(rng, n, h=32, w=32):
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


# --- Dataset -------------------------------------------------------------------------------

def test_dataset_basics(rng):
    ds = Dataset(_images(rng, 6), np.array([0, 1, 2, 0, 1, 2]), ("a", "b", "c"), "toy")
    assert len(ds) == 6 and ds.num_classes == 3 and ds.image_size == (32, 32)
    assert ds.class_counts().tolist() == [2, 2, 2]
    sub = ds.subset(np.array([0, 3]))
    assert len(sub) == 2 and sub.labels.tolist() == [0, 0] and sub.class_names == ds.class_names
    assert len(ds.subset(slice(0, 4))) == 4 and len(ds.subset(ds.labels == 1)) == 2
    mean, std = ds.normalization()  # computed from the images when not stored
    np.testing.assert_allclose(mean, ds.images.reshape(-1, 3).mean(0))
    np.testing.assert_allclose(std, ds.images.reshape(-1, 3).std(0))


@pytest.mark.parametrize("images, labels, match", [
    (np.zeros((3, 32, 32, 3), np.uint8), np.array([0, 1, 3]), "label 3 is out of range 0..2"),
    (np.zeros((3, 32, 32, 3), np.uint8), np.array([0, -1, 2]), "label -1 is out of range"),
    (np.zeros((3, 32, 32, 3), np.uint8), np.array([0, 1]), r"labels must have shape \(3,\)"),
    (np.zeros((3, 32, 32, 3), np.uint8), np.array([0, 1, 2], np.int32), "labels must be int64"),
    (np.zeros((3, 32, 32, 3), np.float32), np.array([0, 1, 2]), "images must be uint8"),
    (np.zeros((3, 3, 32, 32), np.uint8), np.array([0, 1, 2]), r"\(N, H, W, 3\)"),
])
def test_dataset_rejects_bad_input(images, labels, match):
    with pytest.raises(ValueError, match=match):
        Dataset(images, labels, ("a", "b", "c"), "bad")


def test_dataset_rejects_bad_stats():
    images, labels = np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1])
    with pytest.raises(ValueError, match="both mean and std"):
        Dataset(images, labels, ("a", "b"), mean=(1, 2, 3))
    with pytest.raises(ValueError, match="std must be positive"):
        Dataset(images, labels, ("a", "b"), mean=(1, 2, 3), std=(1, 0, 1))


def test_channel_stats_exact(rng):
    x = _images(rng, 37, 5, 7)
    mean, std = channel_stats(x)
    np.testing.assert_allclose(mean, x.reshape(-1, 3).astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, x.reshape(-1, 3).astype(np.float64).std(0), rtol=1e-10)


@pytest.mark.parametrize("value", [0, 131, 255])
def test_channel_stats_give_a_constant_channel_std_1(rng, value):
    x = _images(rng, 9, 5, 7)
    x[..., 1] = value
    mean, std = channel_stats(x)
    assert mean[1] == value and std[1] == 1.0  # only centred: (x - value) / 1 is 0
    np.testing.assert_allclose(std[0], x[..., 0].astype(np.float64).std(), rtol=1e-10)
    Dataset(x, np.arange(9) % 2, ("a", "b"), mean=mean, std=std)  # accepted


def test_balanced_subset_of_class_grouped_data(rng):
    # The shared CIFAR-10 arrays are grouped by class; "the first N" would be one class.
    labels = np.repeat(np.arange(10), 50)
    ds = Dataset(_images(rng, 500), labels, tuple(map(str, range(10))), "grouped")
    sub = ds.balanced_subset(123)
    assert len(sub) == 123
    assert sub.class_counts().max() - sub.class_counts().min() <= 1
    again = ds.balanced_subset(123)
    assert np.array_equal(sub.images, again.images) and np.array_equal(sub.labels, again.labels)
    other = ds.balanced_subset(123, seed=1)
    assert not np.array_equal(sub.images, other.images)
    # every subset image is one of the parent's, with its own label
    flat = {img.tobytes(): lab for img, lab in zip(ds.images, ds.labels)}
    assert all(flat[img.tobytes()] == lab for img, lab in zip(sub.images, sub.labels))
    assert ds.balanced_subset(500) is ds
    with pytest.raises(ValueError, match="positive integer"):
        ds.balanced_subset(0)


# --- synthetic data ----------------------------------------------------------------------------

def test_synthetic_deterministic_and_seeded():
    x1, y1 = make_synthetic(200, seed=0)
    x2, y2 = make_synthetic(200, seed=0)
    assert x1.shape == (200, 32, 32, 3) and x1.dtype == np.uint8 and y1.dtype == np.int64
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    x3, _ = make_synthetic(200, seed=1)
    xt, _ = make_synthetic(200, seed=0, split="test")
    assert np.mean(x1 != x3) > 0.5 and np.mean(x1 != xt) > 0.5


def test_synthetic_prefix_stable_across_blocks():
    # Image i depends only on (seed, split, i): a smaller set is a prefix of a larger one.
    x_small, y_small = make_synthetic(1030)
    x_big, y_big = make_synthetic(1100)
    assert np.array_equal(x_small, x_big[:1030]) and np.array_equal(y_small, y_big[:1030])


def test_synthetic_balanced_and_valid():
    train, test = load_synthetic(n_train=1000, n_test=30, seed=3)
    assert train.class_names == CLASS_NAMES and len(CLASS_NAMES) == 10
    assert train.class_counts().tolist() == [100] * 10
    # each consecutive group of 10 holds every class once
    assert all(sorted(g) == list(range(10)) for g in train.labels.reshape(-1, 10).tolist())
    assert test.class_counts().tolist() == [3] * 10
    assert test.mean == train.mean and test.std == train.std  # the train statistics, shared
    assert 20 < np.std(train.images) < 120  # neither blank nor saturated


def test_synthetic_argument_errors():
    with pytest.raises(ValueError, match="split"):
        make_synthetic(10, split="val")
    with pytest.raises(ValueError, match="non-negative integer"):
        make_synthetic(-1)
    with pytest.raises(ValueError, match="seed"):
        make_synthetic(10, seed=-3)


def test_synthetic_nearest_class_mean_is_above_chance_but_far_from_perfect():
    # Observed with these sizes: 0.22 (0.25 with 10,000 / 2,000 images; chance is 0.10).
    train, test = load_synthetic(n_train=2000, n_test=1000, seed=0)
    xtr = train.images.reshape(len(train), -1).astype(np.float32)
    xte = test.images.reshape(len(test), -1).astype(np.float32)
    means = np.stack([xtr[train.labels == c].mean(0) for c in range(10)])
    pred = np.argmin((means ** 2).sum(1) - 2 * xte @ means.T, axis=1)
    accuracy = np.mean(pred == test.labels)
    assert 0.15 < accuracy < 0.40, accuracy


def test_synthetic_fine_detail_needs_resolution():
    # The stripe orientation (the within-family class) is read off by comparing horizontal
    # and vertical second differences. Observed: 0.99 at 32 px, 0.96 at 24 px, 0.69 at 16 px.
    x, y = make_synthetic(1000)
    full = to_float_nchw(x, (0, 0, 0), (1, 1, 1))

    def stripe_oracle_accuracy(size):
        g = resize_bilinear(full, size).mean(axis=1)
        along_y = np.abs(g[:, 2:] - 2 * g[:, 1:-1] + g[:, :-2]).mean((1, 2))
        along_x = np.abs(g[:, :, 2:] - 2 * g[:, :, 1:-1] + g[:, :, :-2]).mean((1, 2))
        return np.mean((along_x > along_y) == (y % 2 == 1))

    assert stripe_oracle_accuracy(32) > 0.9
    assert stripe_oracle_accuracy(16) < 0.8


# --- transforms ---------------------------------------------------------------------------------

def test_to_float_nchw_values(rng):
    x = _images(rng, 4, 5, 6)
    mean, std = (10.0, 20.0, 30.0), (2.0, 4.0, 8.0)
    want = ((x.astype(np.float64) - mean) / std).transpose(0, 3, 1, 2)
    for name in ("numpy", "numba"):
        with use_backend(name):
            out = to_float_nchw(x, mean, std)
        assert out.dtype == np.float32 and out.shape == (4, 3, 5, 6) and out.flags.c_contiguous
        np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)


def test_to_float_nchw_errors(rng):
    with pytest.raises(ValueError, match="must be uint8"):
        to_float_nchw(np.zeros((1, 4, 4, 3), np.float32), (0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        to_float_nchw(np.zeros((1, 3, 4, 4), np.uint8), (0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match="3 values"):
        to_float_nchw(_images(rng, 1), (0, 0), (1, 1))
    with pytest.raises(ValueError, match="positive"):
        to_float_nchw(_images(rng, 1), (0, 0, 0), (1, 0, 1))


def test_crop_flip_semantics(rng):
    x = rng.standard_normal((3, 2, 6, 5)).astype(np.float32)
    p = 2
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    top, left, flip = np.array([0, 4, 1]), np.array([3, 0, 2]), np.array([False, True, True])
    want = np.stack([padded[n, :, top[n]:top[n] + 6, left[n]:left[n] + 5] for n in range(3)])
    want[flip] = want[flip][..., ::-1]
    for name in ("numpy", "numba"):
        with use_backend(name):
            np.testing.assert_array_equal(crop_flip(x, top, left, flip, p), want)
            # centre crop without flip is the identity; padding 0 with flip is a mirror
            np.testing.assert_array_equal(crop_flip(x, [p] * 3, [p] * 3, [False] * 3, p), x)
            np.testing.assert_array_equal(crop_flip(x, [0] * 3, [0] * 3, [True] * 3, 0), x[..., ::-1])


def test_crop_flip_errors():
    x = np.zeros((2, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"offsets must lie in 0..8"):
        crop_flip(x, [0, 9], [0, 0], [False, False], 4)
    with pytest.raises(ValueError, match=r"flip must have shape \(2,\)"):
        crop_flip(x, [0, 0], [0, 0], [False], 4)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        random_crop_flip(np.zeros((3, 4, 4)), np.random.default_rng(0))
    with pytest.raises(ValueError, match="Generator"):
        random_crop_flip(x, np.random.RandomState(0))


def test_random_crop_flip_is_seeded(rng):
    x = rng.standard_normal((64, 3, 8, 8)).astype(np.float32)
    a = random_crop_flip(x, np.random.default_rng(7), padding=2)
    b = random_crop_flip(x, np.random.default_rng(7), padding=2)
    c = random_crop_flip(x, np.random.default_rng(8), padding=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Draw order is documented: offsets first, then the flips.
    g = np.random.default_rng(7)
    top, left = g.integers(0, 5, size=(2, 64))
    np.testing.assert_array_equal(a, crop_flip(x, top, left, g.random(64) < 0.5, 2))
    only_flip = random_crop_flip(x, np.random.default_rng(1), padding=0)
    flipped = [np.array_equal(o, i[..., ::-1]) for o, i in zip(only_flip, x)]
    kept = [np.array_equal(o, i) for o, i in zip(only_flip, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and 16 < sum(flipped) < 48


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       padding=st.integers(0, 5), seed=st.integers(0, 2 ** 16), dtype=st.sampled_from([np.float32, np.uint8]))
def test_crop_flip_backends_agree(n, c, h, w, padding, seed, dtype):
    g = np.random.default_rng(seed)
    x = (g.random((n, c, h, w)) * 200).astype(dtype)
    top, left = g.integers(0, 2 * padding + 1, size=(2, n))
    flip = g.random(n) < 0.5
    with use_backend("numpy"):
        ref = crop_flip(x, top, left, flip, padding)
    with use_backend("numba"):
        fast = crop_flip(x, top, left, flip, padding)
    assert ref.dtype == fast.dtype == dtype
    np.testing.assert_array_equal(ref, fast)


def test_cutout(rng):
    x = np.ones((50, 3, 10, 10), np.float32)
    out = cutout(x, np.random.default_rng(0), 4)
    assert out.shape == x.shape and out.dtype == x.dtype and np.all(x == 1)  # input untouched
    holes = out == 0
    assert np.all(holes == holes[:, :1])  # the same square in every channel
    per_image = holes[:, 0].sum(axis=(1, 2))
    assert per_image.max() == 16 and per_image.min() >= 4  # clipped at borders, never vanishing
    rows, cols = holes[:, 0].any(2), holes[:, 0].any(1)
    assert np.array_equal(holes[:, 0], rows[:, :, None] & cols[:, None, :])  # a rectangle
    np.testing.assert_array_equal(cutout(x, np.random.default_rng(0), 0), x)
    np.testing.assert_array_equal(out, cutout(x, np.random.default_rng(0), 4))


def test_resize_bilinear_properties(rng):
    x = rng.standard_normal((2, 3, 8, 6)).astype(np.float64)
    for name in ("numpy", "numba"):
        with use_backend(name):
            np.testing.assert_array_equal(resize_bilinear(x, (8, 6)), x)
            # exact halving without antialiasing averages 2x2 blocks
            half = resize_bilinear(x, (4, 3))
            np.testing.assert_allclose(half, x.reshape(2, 3, 4, 2, 3, 2).mean((3, 5)), rtol=1e-12)
            up = resize_bilinear(x.astype(np.float32), 17)
            assert up.shape == (2, 3, 17, 17) and up.dtype == np.float32
            const = resize_bilinear(np.full((1, 1, 5, 5), 2.5), 13)
            np.testing.assert_allclose(const, 2.5, rtol=1e-12)
    with pytest.raises(ValueError, match="float32 or float64"):
        resize_bilinear(np.zeros((1, 3, 4, 4), np.uint8), 8)
    for bad in (0, (4, 4, 4), 2.5, (3, -1)):
        with pytest.raises(ValueError, match="positive int"):
            resize_bilinear(x, bad)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), oh=st.integers(1, 20), ow=st.integers(1, 20),
       seed=st.integers(0, 2 ** 16))
def test_resize_backends_agree(h, w, oh, ow, seed):
    x = np.random.default_rng(seed).standard_normal((2, 2, h, w))
    with use_backend("numpy"):
        ref = resize_bilinear(x, (oh, ow))
    with use_backend("numba"):
        fast = resize_bilinear(x, (oh, ow))
    np.testing.assert_allclose(ref, fast, rtol=1e-12, atol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("size", [(64, 64), (48, 48), (24, 24), (16, 16), (37, 51), (5, 3), (32, 32)])
def test_resize_matches_torch(size, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    want = torch.nn.functional.interpolate(torch.from_numpy(x), size=size, mode="bilinear",
                                           align_corners=False, antialias=False).numpy()
    for name in ("numpy", "numba"):
        with use_backend(name):
            np.testing.assert_allclose(resize_bilinear(x, size), want, rtol=1e-5, atol=1e-5)


# --- loader ------------------------------------------------------------------------------------

def _indexed_dataset(n):
    """Images that carry their own index in pixel (0, 0): channel 0 = n % 256, channel 1 = n // 256."""
    images = np.zeros((n, 8, 8, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256
    images[:, 0, 0, 1] = np.arange(n) // 256
    return Dataset(images, (np.arange(n) % 3).astype(np.int64), ("a", "b", "c"), "indexed",
                   mean=(0, 0, 0), std=(1, 1, 1))


def _indices(x):
    return (x[:, 0, 0, 0] + 256 * x[:, 1, 0, 0]).round().astype(int)


def test_loader_epoch_covers_everything_once():
    ds = _indexed_dataset(300)
    batches = iterate_batches(ds, 64, np.random.default_rng(0))
    assert len(batches) == 5
    seen = []
    for x, y in batches:
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape[1:] == (3, 8, 8)
        idx = _indices(x)
        np.testing.assert_array_equal(y, ds.labels[idx])
        seen.append(idx)
    seen = np.concatenate(seen)
    assert sorted(seen.tolist()) == list(range(300)) and not np.array_equal(seen, np.arange(300))
    with pytest.raises(StopIteration):
        next(batches)


def test_loader_order_length_and_reproducibility():
    ds = _indexed_dataset(130)
    plain = [_indices(x) for x, _ in iterate_batches(ds, 50, np.random.default_rng(0), shuffle=False)]
    assert [len(b) for b in plain] == [50, 50, 30]
    np.testing.assert_array_equal(np.concatenate(plain), np.arange(130))
    dropped = iterate_batches(ds, 50, np.random.default_rng(0), drop_last=True)
    assert len(dropped) == 2 and [len(y) for _, y in dropped] == [50, 50]

    loader = BatchLoader(ds, 50, np.random.default_rng(5), augment=True, resolution=12)
    again = BatchLoader(ds, 50, np.random.default_rng(5), augment=AugmentConfig())
    assert len(loader) == 3
    epoch1 = [x for x, _ in loader]
    epoch2 = [x for x, _ in loader]
    assert epoch1[0].shape == (50, 3, 12, 12)
    assert not np.array_equal(epoch1[0], epoch2[0])  # each epoch is a new shuffle
    replay = BatchLoader(ds, 50, np.random.default_rng(5), augment=True, resolution=12)
    for a, b in zip(epoch1 + epoch2, [x for x, _ in replay] + [x for x, _ in replay]):
        np.testing.assert_array_equal(a, b)
    assert [x.shape for x, _ in again] == [(50, 3, 8, 8)] * 2 + [(30, 3, 8, 8)]


def test_loader_augmentation_pipeline_matches_transforms():
    ds = _indexed_dataset(40)
    aug = AugmentConfig(crop_padding=2, flip=True, cutout=3)
    (x, y), = iterate_batches(ds, 40, np.random.default_rng(9), shuffle=False, augment=aug, resolution=16)
    g = np.random.default_rng(9)
    want = to_float_nchw(ds.images, (0, 0, 0), (1, 1, 1))
    want = resize_bilinear(cutout(random_crop_flip(want, g, padding=2), g, 3), 16)
    np.testing.assert_array_equal(x, want)


def test_loader_normalises_with_dataset_stats(rng):
    ds = Dataset(_images(rng, 10), np.zeros(10, np.int64), ("a",), mean=(100, 110, 120), std=(50, 60, 70))
    (x, _), = iterate_batches(ds, 10, np.random.default_rng(0), shuffle=False)
    np.testing.assert_allclose(x, to_float_nchw(ds.images, ds.mean, ds.std))


def test_loader_errors():
    ds = _indexed_dataset(10)
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(ds, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="Generator"):
        BatchLoader(ds, 4, 0)
    with pytest.raises(ValueError, match="augment"):
        BatchLoader(ds, 4, np.random.default_rng(0), augment="flip")
    with pytest.raises(ValueError, match="resolution"):
        BatchLoader(ds, 4, np.random.default_rng(0), resolution=0)
    with pytest.raises(ValueError, match="Dataset"):
        BatchLoader(ds.images, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="crop_padding"):
        AugmentConfig(crop_padding=-1)
    with pytest.raises(ValueError, match="cutout"):
        AugmentConfig(cutout=2.5)


# --- CIFAR: fake archives in the official format ---------------------------------------------------

class _Py2Pickler(pickle._Pickler):
    """Writes pickles as Python 2 did (the official CIFAR files): bytes as py2 ``str`` opcodes."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        n = len(obj)
        self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256
                   else pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def _py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 1.x (and the 2009 files) name the array rebuilder numpy.core.multiarray
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def _batch(images, labels_by_key):
    """An official-format batch dict: b'data' (n, 3072) uint8, CHW-flattened rows."""
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    return {b"batch_label": b"fake batch", b"data": data,
            b"filenames": [b"img_%d.png" % i for i in range(len(images))],
            **{k: [int(v) for v in vals] for k, vals in labels_by_key.items()}}


def _fake_cifar10(rng, n_per_batch=4):
    """members {name: pickle bytes} for cifar-10-batches-py, plus the expected arrays."""
    members, xs, ys = {}, [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = _images(rng, n_per_batch)
        y = rng.integers(0, 10, n_per_batch)
        members[name] = _py2_pickle(_batch(x, {b"labels": y}))
        xs.append(x)
        ys.append(y)
    members["batches.meta"] = _py2_pickle({b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                                           b"num_cases_per_batch": n_per_batch, b"num_vis": 3072})
    expected = (np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5])
    return members, expected


def _write_tar(path: Path, folder: str, members: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _write_folder(folder: Path, members: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        (folder / name).write_bytes(data)
    return folder


def _check_cifar10(train, test, expected):
    x_train, y_train, x_test, y_test = expected
    np.testing.assert_array_equal(train.images, x_train)  # CHW rows decoded to HWC
    np.testing.assert_array_equal(train.labels, y_train)
    np.testing.assert_array_equal(test.images, x_test)
    np.testing.assert_array_equal(test.labels, y_test)
    assert train.class_names == CIFAR10_CLASSES and train.labels.dtype == np.int64
    assert train.name == "cifar10-train" and test.name == "cifar10-test"
    np.testing.assert_allclose(train.mean, channel_stats(x_train)[0])
    assert test.mean == train.mean and test.std == train.std


def test_cifar10_from_archive(tmp_path, rng):
    members, expected = _fake_cifar10(rng)
    members["readme.html"] = b"<html></html>"
    _write_tar(tmp_path / "cifar10" / "cifar-10-python.tar.gz", "cifar-10-batches-py", members)
    _check_cifar10(*load_cifar10(tmp_path, download=False), expected)


def test_cifar10_from_extracted_folder_and_env(tmp_path, rng, monkeypatch):
    members, expected = _fake_cifar10(rng)
    folder = _write_folder(tmp_path / "cifar-10-batches-py", members)
    _check_cifar10(*load_cifar10(tmp_path, download=False), expected)  # files directly in data_dir
    _check_cifar10(*load_cifar10(folder, download=False), expected)    # data_dir is the batches folder
    monkeypatch.setenv("MINIEFFNET_DATA", str(tmp_path))
    _check_cifar10(*load_cifar10(download=False), expected)


def test_default_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIEFFNET_DATA", str(tmp_path / "data"))
    assert default_data_dir() == tmp_path / "data"
    monkeypatch.delenv("MINIEFFNET_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "minieffnet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_data_dir() == Path.home() / ".cache" / "minieffnet"


def test_cifar100_fine_and_coarse(tmp_path, rng):
    members, fine, coarse, xs = {}, [], [], []
    for name, n in (("train", 6), ("test", 3)):
        x = _images(rng, n)
        f, c = rng.integers(0, 100, n), rng.integers(0, 20, n)
        members[name] = _py2_pickle(_batch(x, {b"fine_labels": f, b"coarse_labels": c}))
        xs.append(x)
        fine.append(f)
        coarse.append(c)
    members["meta"] = _py2_pickle({b"fine_label_names": [c.encode() for c in cifar.CIFAR100_CLASSES],
                                   b"coarse_label_names": [c.encode() for c in cifar.CIFAR100_COARSE_CLASSES]})
    _write_tar(tmp_path / "cifar-100-python.tar.gz", "cifar-100-python", members)
    train, test = load_cifar100(tmp_path, download=False)
    np.testing.assert_array_equal(train.images, xs[0])
    np.testing.assert_array_equal(train.labels, fine[0])
    np.testing.assert_array_equal(test.labels, fine[1])
    assert train.num_classes == 100 and train.class_names[:3] == ("apple", "aquarium_fish", "baby")
    train_c, test_c = load_cifar100(tmp_path, download=False, label_mode="coarse")
    np.testing.assert_array_equal(test_c.labels, coarse[1])
    assert train_c.num_classes == 20 and train_c.name == "cifar100-coarse-train"
    with pytest.raises(ValueError, match="label_mode"):
        load_cifar100(tmp_path, download=False, label_mode="medium")


def test_cifar10_npz_form(tmp_path, rng):
    folder = tmp_path / "cifar10"
    folder.mkdir()
    x, y = _images(rng, 12), rng.integers(0, 10, 12).astype(np.uint8)
    np.savez(folder / "cifar10_train.npz", images=x, labels=y, classes=np.array(CIFAR10_CLASSES))
    np.savez(folder / "cifar10_test.npz", images=x[:4], labels=y[:4])  # 'classes' is optional
    train, test = load_cifar10(tmp_path, download=False)
    np.testing.assert_array_equal(train.images, x)
    assert train.labels.dtype == np.int64 and train.labels.tolist() == y.tolist()
    assert train.class_names == CIFAR10_CLASSES and len(test) == 4


@pytest.mark.parametrize("arrays, match", [
    (dict(images=np.zeros((2, 32, 32, 3), np.float32), labels=np.zeros(2, np.int64)), "'images' must be uint8"),
    (dict(images=np.zeros((2, 3, 32, 32), np.uint8), labels=np.zeros(2, np.int64)), r"\(N, 32, 32, 3\)"),
    (dict(images=np.zeros((2, 32, 32, 3), np.uint8), labels=np.array([0, 10])), r"must lie in 0..9"),
    (dict(images=np.zeros((2, 32, 32, 3), np.uint8), labels=np.zeros(3, np.int64)), "must hold 2 labels"),
    (dict(images=np.zeros((2, 32, 32, 3), np.uint8), labels=np.zeros(2, np.float32)), "must be integers"),
    (dict(images=np.zeros((2, 32, 32, 3), np.uint8)), "missing array 'labels'"),
])
def test_cifar10_npz_rejects_bad_arrays(tmp_path, arrays, match):
    np.savez(tmp_path / "cifar10_train.npz", **arrays)
    np.savez(tmp_path / "cifar10_test.npz", images=np.zeros((1, 32, 32, 3), np.uint8), labels=np.zeros(1, np.int64))
    with pytest.raises(ValueError, match=match) as err:
        load_cifar10(tmp_path, download=False)
    assert "cifar10_train.npz" in str(err.value)


def test_cifar10_npz_damaged_or_incomplete(tmp_path):
    (tmp_path / "cifar10_train.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(FileNotFoundError, match="cifar10_test.npz"):  # the pair is incomplete
        load_cifar10(tmp_path, download=False)
    (tmp_path / "cifar10_test.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="cifar10_train.npz: cannot read"):
        load_cifar10(tmp_path, download=False)


def test_cifar_archive_truncated_or_incomplete(tmp_path, rng):
    members, _ = _fake_cifar10(rng, n_per_batch=40)
    path = _write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", members)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated archive") as err:
        load_cifar10(tmp_path, download=False)
    assert str(path) in str(err.value)
    del members["test_batch"]
    _write_tar(path, "cifar-10-batches-py", members)
    with pytest.raises(ValueError, match="lacks cifar-10-batches-py/test_batch"):
        load_cifar10(tmp_path, download=False)


def test_cifar_bad_batch_contents(tmp_path, rng):
    members, _ = _fake_cifar10(rng)
    folder = tmp_path / "cifar-10-batches-py"
    bad = dict(members, data_batch_3=_py2_pickle({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    _write_folder(folder, bad)
    with pytest.raises(ValueError, match="data_batch_3: 'data' must be uint8 rows of 3072"):
        load_cifar10(tmp_path, download=False)
    bad = dict(members, data_batch_2=_py2_pickle(_batch(_images(rng, 2), {b"labels": [0, 12]})))
    _write_folder(folder, bad)
    with pytest.raises(ValueError, match=r"data_batch_2: 'labels' must lie in 0..9"):
        load_cifar10(tmp_path, download=False)
    _write_folder(folder, dict(members, test_batch=members["test_batch"][:50]))
    with pytest.raises(ValueError, match="test_batch: not a valid CIFAR pickle"):
        load_cifar10(tmp_path, download=False)
    (folder / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match="test_batch"):
        load_cifar10(tmp_path, download=False)


def test_python3_written_batches_also_load():
    # Re-pickled copies (Python 3, bytes keys, numpy 2 names) decode like the originals...
    x = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    batch = cifar._unpickle(pickle.dumps({b"data": x, b"labels": [3, 4]}, protocol=4), "py3")
    images, labels = cifar._decode_batch(batch, "labels", 10, "py3")
    np.testing.assert_array_equal(images, x.reshape(2, 3, 32, 32).transpose(0, 2, 3, 1))
    assert labels.tolist() == [3, 4]
    # ...except at protocol 2, where Python 3 spells bytes as a call to _codecs.encode: not
    # on the allow-list, so refused (the official files, written by Python 2, never need it).
    with pytest.raises(ValueError, match="_codecs.encode"):
        cifar._unpickle(pickle.dumps({b"data": x}, protocol=2), "py3")


class _Exploit:
    """Unpickling this would run a shell command (it creates the marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused(tmp_path, rng):
    marker = tmp_path / "pwned"
    members, _ = _fake_cifar10(rng)
    members["data_batch_1"] = _py2_pickle({b"data": _Exploit(marker), b"labels": [0]})
    _write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", members)
    with pytest.raises(ValueError, match=r"refusing to load global '(posix|nt|os)\.system'"):
        load_cifar10(tmp_path, download=False)
    assert not marker.exists()
    # an arbitrary callable smuggled as a "numpy-looking" global is refused as well
    payload = b"\x80\x02cbuiltins\neval\nq\x00X\x04\x00\x00\x001+1q\x01\x85q\x02Rq\x03."
    with pytest.raises(ValueError, match="refusing to load global 'builtins.eval'"):
        cifar._unpickle(payload, "payload")


def test_cifar_not_found_without_download(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10(tmp_path, download=False)
    message = str(err.value)
    assert "cifar-10-python.tar.gz" in message and str(tmp_path / "cifar10") in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message


# --- downloads, with a fake network ------------------------------------------------------------------

class _FakeResponse(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def _serve(monkeypatch, data: bytes | None, seen: list | None = None):
    """Replace urlopen: serve ``data`` for any URL, or fail like a machine without network."""
    def fake_urlopen(url, timeout=None):
        if seen is not None:
            seen.append(url)
        if data is None:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        return _FakeResponse(data)
    monkeypatch.setattr(download.urllib.request, "urlopen", fake_urlopen)


def test_download_url_checks_md5_and_is_atomic(tmp_path, monkeypatch):
    data = os.urandom(3 * (1 << 20) + 123)
    _serve(monkeypatch, data)
    dest = tmp_path / "sub" / "file.bin"
    assert download_url("http://example.invalid/file.bin", dest, hashlib.md5(data).hexdigest(),
                        progress=False) == dest
    assert dest.read_bytes() == data and download.md5sum(dest) == hashlib.md5(data).hexdigest()
    with pytest.raises(ValueError, match="MD5 .* expected 0+"):
        download_url("http://example.invalid/file.bin", tmp_path / "bad.bin", "0" * 32, progress=False)
    _serve(monkeypatch, None)
    with pytest.raises(DownloadError, match="could not download http://example.invalid/x"):
        download_url("http://example.invalid/x", tmp_path / "x.bin", None, progress=False)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["file.bin", "sub"]  # no partial files


def test_cifar10_download(tmp_path, monkeypatch, rng):
    members, expected = _fake_cifar10(rng)
    archive = _write_tar(tmp_path / "served" / "a.tar.gz", "cifar-10-batches-py", members).read_bytes()
    # the real spec with the fake archive's checksum: the code path of a real download
    monkeypatch.setattr(cifar, "CIFAR10", replace(cifar.CIFAR10, md5=hashlib.md5(archive).hexdigest()))
    urls = []
    _serve(monkeypatch, archive, urls)
    root = tmp_path / "root"
    _check_cifar10(*load_cifar10(root, download=True), expected)
    assert urls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert (root / "cifar10" / "cifar-10-python.tar.gz").read_bytes() == archive
    _check_cifar10(*load_cifar10(root, download=True), expected)
    assert len(urls) == 1  # found on disk the second time


def test_cifar10_download_failures(tmp_path, monkeypatch, rng):
    _serve(monkeypatch, None)
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10(tmp_path, download=True)
    message = str(err.value)
    assert "download failed" in message and "name resolution" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert f"put cifar-10-python.tar.gz in {tmp_path / 'cifar10'}" in message
    _serve(monkeypatch, b"this is not the CIFAR archive")
    with pytest.raises(ValueError, match="MD5 .* expected c58f30108f718f92721af3b95e74349a"):
        load_cifar10(tmp_path, download=True)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # nothing half-written was kept


# --- the real CIFAR-10 files, when this machine has them ---------------------------------------------

def test_real_cifar10_npz():
    root = os.environ.get("MINIEFFNET_DATA")
    if not root or not (Path(root) / "cifar10" / "cifar10_train.npz").is_file():
        pytest.skip("CIFAR-10 .npz files not found under $MINIEFFNET_DATA")
    train, test = load_cifar10(download=False)
    assert train.images.shape == (50000, 32, 32, 3) and test.images.shape == (10000, 32, 32, 3)
    assert train.class_names == CIFAR10_CLASSES
    assert train.class_counts().tolist() == [5000] * 10 and test.class_counts().tolist() == [1000] * 10
    np.testing.assert_allclose(train.mean, (125.31, 122.95, 113.87), atol=0.006)
    np.testing.assert_allclose(train.std, (62.99, 62.09, 66.71), atol=0.006)


# --- edges: mistyped data paths, cutout vs image size, image files -------------------------------

def test_failed_download_into_a_mistyped_path_creates_no_folder(tmp_path, monkeypatch):
    _serve(monkeypatch, None)
    typo = tmp_path / "dta" / "cifra"
    with pytest.raises(FileNotFoundError, match="download failed"):
        load_cifar10(typo, download=True)
    assert list(tmp_path.iterdir()) == []  # not even tmp_path/dta
    # A folder that existed before stays, with what was in it.
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    with pytest.raises(FileNotFoundError):
        load_cifar10(tmp_path / "kept", download=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept", "notes.txt"]


def test_cutout_must_be_smaller_than_the_images(rng):
    data = Dataset(_images(rng, 4, 12, 20), np.zeros(4, np.int64), ("a",), "twelve")
    for size in (12, 40):
        with pytest.raises(BadOptionError, match=rf"cutout {size} must be smaller than the images "
                                                 r"of twelve \(12x20 px\)"):
            BatchLoader(data, 2, np.random.default_rng(0), augment=AugmentConfig(cutout=size))
    x, _ = next(iter(BatchLoader(data, 2, np.random.default_rng(0), augment=AugmentConfig(cutout=11))))
    assert (x != 0).any(axis=(1, 2, 3)).all()  # every image keeps some of itself


def _png_bytes(array) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("content, match", [
    (b"hello, not an image", "cannot read the image"),
    (b"", "cannot read the image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "cannot read the image"),
    ("half-png", "cannot read the image"),
    ("gray", r"grayscale image of shape \(5, 7\)"),
])
def test_read_image_refuses_what_is_not_an_rgb_image(tmp_path, rng, content, match):
    if content == "half-png":
        data = _png_bytes(_images(rng, 1, 9, 9)[0])
        content = data[:len(data) // 2]
    elif content == "gray":
        content = _png_bytes(np.zeros((5, 7), np.uint8))
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(BadFileError, match=rf"x\.png: .*{match}"):
        read_image(path)
    with pytest.raises(FileNotFoundError, match="cannot read the image"):
        read_image(tmp_path / "absent.png")


def test_read_image_gives_rgb_uint8_from_rgba_palette_and_jpeg(tmp_path, rng):
    from PIL import Image
    rgb = _images(rng, 1, 6, 8)[0]
    Image.fromarray(np.dstack([rgb, np.full((6, 8), 7, np.uint8)])).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)  # alpha dropped
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (6, 8, 3)
    Image.fromarray(rgb).save(tmp_path / "j.jpg", quality=95)
    out = read_image(tmp_path / "j.jpg")
    assert out.dtype == np.uint8 and out.shape == (6, 8, 3)
