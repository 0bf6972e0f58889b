"""Your own data: ``--dataset folder:PATH`` (an image-folder tree, decoded with
Pillow, cached as arrays) and ``--dataset npz:PATH`` (``PATH_train.npz`` / ``PATH_test.npz``,
any image size), through the loaders and through train, evaluate, compare-scaling and
grid-search."""
import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

import minieffnet.data.folder as folder_module
from minieffnet.cli import main
from minieffnet.data import DATASETS, Dataset, channel_stats, dataset_label, load_dataset, \
    to_float_nchw
from minieffnet.errors import BadFileError
from minieffnet.io import load_npz, save_npz_atomic
from minieffnet.train_config import TrainConfig

TRAIN_ARGS = ["--width", "0.1", "--depth", "0.1", "--resolution", "16", "--batch-size", "8",
              "--epochs", "1", "--no-progress"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Decoded image folders are cached under $XDG_CACHE_HOME: keep them in the test's folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "minieffnet" / "folders"


def _tree(root, rng, layout, size=(10, 12)):
    """Write ``layout`` {split: {class: count}} as PNG (and every third as JPEG) images of
    ``size`` (H, W) pixels: a bright class-coloured square, so classes differ."""
    for split, classes in layout.items():
        for c, (name, count) in enumerate(sorted(classes.items())):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                img = rng.integers(0, 60, (*size, 3), dtype=np.uint8)
                img[2:6, 2:6, c % 3] = 250
                suffix = ".jpg" if i % 3 == 2 else ".png"
                Image.fromarray(img).save(root / split / name / f"img{i}{suffix}", quality=95)
    return root


def _files(root):
    """{relative path: (size, mtime)} of every file under root."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


# --- the image-folder loader -------------------------------------------------------------------
def test_image_folder_classes_labels_sizes_and_statistics(tmp_path, rng, private_cache):
    root = _tree(tmp_path / "pets", rng, {"train": {"dog": 4, "cat": 3}, "test": {"cat": 2}})
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(root / "train" / "dog" / "big.png")
    (root / "train" / "dog" / ".hidden.png").write_bytes(b"skipped")
    (root / "train" / "dog" / "notes.txt").write_text("skipped")
    before = _files(root)
    train, test = load_dataset(f"folder:{root}")
    assert train.class_names == test.class_names == ("cat", "dog")  # sorted folder names
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1, 1, 1] and test.labels.tolist() == [0, 0]
    assert train.images.shape == (8, 10, 12, 3)  # the odd 20x30 image resized to the usual
    assert (train.mean, train.std) == channel_stats(train.images)
    assert (test.mean, test.std) == (train.mean, train.std)  # the training statistics
    assert train.name == "pets-train" and test.name == "pets-test"
    assert _files(root) == before  # the image folder is only read
    assert len(list(private_cache.glob("pets-*.npz"))) == 1


def test_image_folder_is_decoded_once_then_read_from_the_cache(tmp_path, rng, monkeypatch):
    root = _tree(tmp_path / "data", rng, {"train": {"a": 2, "b": 2}, "test": {"a": 1, "b": 1}})
    first = load_dataset(f"folder:{root}")[0]

    def no_decoding(path):
        raise AssertionError(f"decoded {path} again")

    with monkeypatch.context() as patched:  # monkeypatch.undo() would drop the private cache
        patched.setattr(folder_module, "read_image", no_decoding)
        np.testing.assert_array_equal(load_dataset(f"folder:{root}")[0].images, first.images)
    _tree(root, rng, {"train": {"a": 3}})  # a new image: the cache no longer fits
    assert len(load_dataset(f"folder:{root}")[0]) == 5


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / "test").rename(root / "tests"), r"data/test: missing"),
    (lambda root: [p.unlink() for p in (root / "train" / "b").iterdir()],
     r"train/b: holds no \.png or \.jpg image"),
    (lambda root: _tree(root, np.random.default_rng(0), {"test": {"c": 1}}),
     r"test/c: class 'c' has no training folder"),
    (lambda root: (root / "train" / "a" / "img0.png").write_text("not a png"),
     r"train/a/img0\.png: cannot read the image"),
])
def test_image_folder_problems_name_the_file_or_folder(tmp_path, rng, damage, message):
    root = _tree(tmp_path / "data", rng, {"train": {"a": 2, "b": 2}, "test": {"a": 1, "b": 1}})
    damage(root)
    with pytest.raises(BadFileError, match=message):
        load_dataset(f"folder:{root}")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_dataset(f"folder:{tmp_path / 'nowhere'}")


# --- the image-folder cache --------------------------------------------------------------------
def _twin(root, seed):
    """Two classes of uncompressed PNGs whose sizes depend only on their shape, all with one
    modification time: folders made by it differ in nothing but their pixels."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", 3), ("test", 1)):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(count):
                path = root / split / c / f"{i}.png"
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), np.uint8)).save(
                    path, compress_level=0)
                os.utime(path, ns=(1_700_000_000 * 10**9,) * 2)
    return root


def test_cache_is_keyed_by_the_images_not_by_names_sizes_and_times(tmp_path, private_cache):
    first, second = _twin(tmp_path / "x" / "pets", 0), _twin(tmp_path / "y" / "pets", 1)
    assert _files(first) == _files(second)  # the same listing, sizes and times
    a = load_dataset(f"folder:{first}")[0].images
    b = load_dataset(f"folder:{second}")[0].images
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(b[0], np.asarray(Image.open(second / "train/a/0.png")))
    assert len(list(private_cache.glob("pets-*.npz"))) == 2


_SPRUNG = []  # what unpickling a _Trap would append to


class _Trap:
    def __reduce__(self):
        return _SPRUNG.append, ("unpickled",)


def _rewrite(cache, arrays=None, meta=None):
    """Write ``cache`` again with some arrays or metadata fields replaced."""
    old_arrays, old_meta = load_npz(cache)
    save_npz_atomic(cache, {**old_arrays, **(arrays or {})}, {**old_meta, **(meta or {})})


@pytest.mark.parametrize("damage, why", [
    (lambda c: c.write_bytes(b"not a cache"), "is corrupt or truncated"),
    (lambda c: c.write_bytes(c.read_bytes()[:-200]), "is corrupt or truncated"),
    (lambda c: _rewrite(c, {"train_images": load_npz(c)[0]["train_images"].astype(np.float32)}),
     "holds train images of float32"),
    (lambda c: _rewrite(c, {"train_images": np.zeros((100, 8, 8, 3), np.uint8)}),
     "the folder has 6"),
    (lambda c: _rewrite(c, {"train_images": np.array([_Trap()], dtype=object)}),
     "corrupt or truncated"),  # refused by np.load(allow_pickle=False), never unpickled
    (lambda c: _rewrite(c, meta={"version": 0}), "is not a version-2 image-folder cache"),
])
def test_a_cache_that_does_not_fit_the_folder_is_rebuilt_saying_why(
        tmp_path, private_cache, capsys, damage, why):
    root = _twin(tmp_path / "pets", 0)
    first = load_dataset(f"folder:{root}")
    [cache] = private_cache.glob("pets-*.npz")
    damage(cache)
    capsys.readouterr()
    again = load_dataset(f"folder:{root}")
    for split in (0, 1):
        np.testing.assert_array_equal(again[split].images, first[split].images)
        np.testing.assert_array_equal(again[split].labels, first[split].labels)
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"minieffnet: image-folder cache {cache} ") and why in line
    assert line.endswith("decoding the images again") and not _SPRUNG
    assert [p.name for p in private_cache.iterdir()] == [cache.name]  # no temporary left
    load_dataset(f"folder:{root}")
    assert capsys.readouterr().err == ""  # rewritten: good from now on


def test_an_unreadable_cache_is_decoded_again_saying_so(tmp_path, monkeypatch, capsys):
    root = _twin(tmp_path / "pets", 0)
    load_dataset(f"folder:{root}")

    def denied(path, what):  # as reading a folder of another user's would (tests run as root)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(folder_module, "load_npz", denied)
    assert len(load_dataset(f"folder:{root}")[0]) == 6
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("minieffnet: image-folder cache ") and "PermissionError" in line


def test_an_unwritable_cache_folder_costs_decoding_and_says_so(tmp_path, monkeypatch, capsys):
    root = _twin(tmp_path / "pets", 0)
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    assert len(load_dataset(f"folder:{root}")[0]) == 6
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("minieffnet: cannot write the image-folder cache ")


# --- data that cannot train: refused up front, naming the file ----------------------------------
def test_one_class_is_refused_naming_the_folder_or_file(tmp_path, rng):
    root = _tree(tmp_path / "pets", rng, {"train": {"cat": 3}, "test": {"cat": 1}})
    with pytest.raises(BadFileError, match=rf"pets/train: every training image is of class "
                                           rf"'cat'; a classifier needs .* at least 2 classes"):
        load_dataset(f"folder:{root}")
    for split, n in (("train", 6), ("test", 2)):
        np.savez(tmp_path / f"one_{split}.npz", images=np.zeros((n, 8, 8, 3), np.uint8),
                 labels=np.zeros(n, np.int64), classes=np.array(["x", "y"]))
    with pytest.raises(BadFileError, match=r"one_train\.npz: every training image is of class 'x'"):
        load_dataset(f"npz:{tmp_path / 'one'}")


def test_duplicate_class_names_are_refused_naming_them(tmp_path, rng):
    _npz_pair(tmp_path / "d", rng, classes=["x", "y", "x"])
    with pytest.raises(BadFileError, match=r"d_train\.npz: 'classes' holds 'x' more than once"):
        load_dataset(f"npz:{tmp_path / 'd'}")
    with pytest.raises(ValueError, match=r"class_names holds 'a' more than once"):
        Dataset(np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1]), ("a", "a"))


@pytest.mark.parametrize("split, label", [("train", 12), ("test", 10**6), ("train", 2**62)])
def test_labels_too_large_to_be_class_indices_are_refused_up_front(tmp_path, rng, split, label):
    prefix = _npz_pair(tmp_path / "d", rng)  # 12 training images, no 'classes'
    with np.load(f"{prefix}_{split}.npz") as npz:
        arrays = dict(npz)
    arrays["labels"][-1] = label
    np.savez(f"{prefix}_{split}.npz", **arrays)
    with pytest.raises(BadFileError, match=rf"d_{split}\.npz: label {label} is too large: .*"
                                           rf"at most the 12 training images"):
        load_dataset(f"npz:{prefix}")


def test_a_constant_colour_channel_is_centred_not_refused(tmp_path, rng):
    root = _tree(tmp_path / "pets", rng, {"train": {"cat": 3, "dog": 3}, "test": {"cat": 2}})
    for path in root.rglob("*.*"):  # blue 0 everywhere (PNG, lossless, keeps it exactly)
        img = np.asarray(Image.open(path)).copy()
        img[..., 2] = 0
        path.unlink()
        Image.fromarray(img).save(path.with_suffix(".png"))
    train, test = load_dataset(f"folder:{root}")
    assert train.mean[2] == 0 and train.std[2] == 1 and train.std[0] > 1
    x = to_float_nchw(test.images, *test.normalization())
    assert np.isfinite(x).all() and not x[:, 2].any()


# --- the npz loader ------------------------------------------------------------------------------
def _npz_pair(prefix, rng, size=(20, 24), n=(12, 6), classes=None):
    for split, count in zip(("train", "test"), n):
        arrays = dict(images=rng.integers(0, 256, (count, *size, 3), dtype=np.uint8),
                      labels=np.arange(count) % 3)
        if classes is not None:
            arrays["classes"] = np.array(classes)
        np.savez(f"{prefix}_{split}.npz", **arrays)
    return prefix


def test_npz_data_of_any_size_with_or_without_class_names(tmp_path, rng):
    prefix = _npz_pair(tmp_path / "shapes", rng)
    train, test = load_dataset(f"npz:{prefix}")
    assert train.images.shape == (12, 20, 24, 3) and len(test) == 6
    assert train.class_names == ("0", "1", "2") and train.name == "shapes-train"
    assert (test.mean, test.std) == (train.mean, train.std) == channel_stats(train.images)
    named = _npz_pair(tmp_path / "named", rng, classes=["x", "y", "z"])
    assert load_dataset(f"npz:{named}")[1].class_names == ("x", "y", "z")


def test_npz_data_problems_name_the_file(tmp_path, rng):
    prefix = _npz_pair(tmp_path / "d", rng)
    np.savez(f"{prefix}_test.npz", images=np.zeros((2, 8, 8, 3), np.uint8), labels=[0, 1])
    with pytest.raises(BadFileError, match=r"d_test\.npz: images are 8x8, but those of "
                                           r"d_train\.npz are 20x24"):
        load_dataset(f"npz:{prefix}")
    with pytest.raises(FileNotFoundError, match=r"e_train\.npz: missing"):
        load_dataset(f"npz:{tmp_path / 'e'}")
    _npz_pair(prefix, rng, classes=["x", "y", "z"])
    np.savez(f"{prefix}_test.npz", images=np.zeros((2, 20, 24, 3), np.uint8), labels=[0, 3],
             classes=np.array(["x", "y", "z"]))
    with pytest.raises(BadFileError, match=r"d_test\.npz: 'labels' must lie in 0\.\.2"):
        load_dataset(f"npz:{prefix}")


def test_dataset_values_are_checked_in_one_place():
    for good in ("synthetic", "cifar10", "cifar100", "folder:~/x", "npz:/a/b"):
        assert good in DATASETS
    for bad in ("folder:", "npz", "imagenet", "csv:/x", 3, None):
        assert bad not in DATASETS
        with pytest.raises(ValueError, match="dataset must be one of"):
            TrainConfig(dataset=bad)
    assert dataset_label("folder:~/photos/pets") == "pets" and dataset_label("cifar10") == "cifar10"


# --- through the command line ------------------------------------------------------------------
def test_train_and_evaluate_on_an_image_folder(tmp_path, rng, capsys):
    root = _tree(tmp_path / "pets", rng, {"train": {"cat": 8, "dog": 8}, "test": {"cat": 3,
                                                                                 "dog": 3}})
    run = tmp_path / "run"
    assert main(["train", "--dataset", f"folder:{root}", *TRAIN_ARGS, "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "data: pets-train 16 / pets-test 6 images" in out
    assert json.loads((run / "config.json").read_text())["dataset"] == f"folder:{root}"
    assert main(["evaluate", str(run)]) == 0
    assert "data: pets-test, 6 images" in capsys.readouterr().out
    image = root / "test" / "dog" / "img0.png"
    assert main(["predict", str(run), str(image), "--top", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].strip().endswith(("cat", "dog"))


def test_evaluate_on_npz_data_and_refuse_other_classes(tmp_path, rng, capsys):
    root = _tree(tmp_path / "pets", rng, {"train": {"cat": 8, "dog": 8}, "test": {"cat": 3}})
    run = tmp_path / "run"
    assert main(["train", "--dataset", f"folder:{root}", *TRAIN_ARGS, "--out", str(run)]) == 0
    prefix = _npz_pair(tmp_path / "other", rng, size=(16, 16))  # 3 classes "0".."2"
    assert main(["evaluate", str(run), "--dataset", f"npz:{prefix}"]) == 2
    assert "are not those of other-test (0, 1, 2" in capsys.readouterr().err
    two = tmp_path / "two"
    for split, n in (("train", 8), ("test", 4)):
        np.savez(f"{two}_{split}.npz", images=rng.integers(0, 256, (n, 16, 16, 3), np.uint8),
                 labels=np.arange(n) % 2, classes=np.array(["cat", "dog"]))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--dataset", f"npz:{two}"]) == 0
    assert "data: two-test, 4 images" in capsys.readouterr().out


def test_scaling_studies_run_on_your_own_data(tmp_path, rng, capsys):
    prefix = _npz_pair(tmp_path / "mine", rng, size=(16, 16), n=(40, 20))
    study = ["--dataset", f"npz:{prefix}", "--width", "0.1", "--depth", "0.1", "--resolution",
             "16", "--epochs", "1", "--batch-size", "20", "--seeds", "1"]
    assert main(["compare-scaling", "--out", str(tmp_path / "cs"), *study, "--targets", "2",
                 "--strategies", "resolution"]) == 0
    with open(tmp_path / "cs" / "results.csv", newline="") as f:
        assert [r["model"] for r in csv.DictReader(f)] == ["base", "resolution-x2"]
    assert main(["grid-search", "--out", str(tmp_path / "gs"), *study, "--step", "0.25",
                 "--tol", "0.2"]) == 0
    with open(tmp_path / "gs" / "results.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 4  # the grid's 3 and the paper's point
    trial = json.loads(next((tmp_path / "gs" / "trials").glob("*/trial.json")).read_text())
    assert trial["train_config"]["dataset"] == f"npz:{prefix}"
    capsys.readouterr()
