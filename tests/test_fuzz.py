"""Fuzz and property tests for everything that reads untrusted input: checkpoint
files, the CIFAR loaders (.npz, extracted folder, archive), your own data (image folders,
.npz) and the image-folder cache, image files and the command line's options.

Each test starts from a valid input, damages it the way hypothesis chooses (bytes flipped or
cut, a metadata field replaced by any JSON value or removed, an array replaced by one of any
dtype and shape, a pickle swapped for another) and requires one of two outcomes: it loads (and
then holds what it should), or it raises minieffnet's own error
(:class:`~minieffnet.errors.MinieffnetError`, or FileNotFoundError for a missing file), never
a raw exception from NumPy, Pillow, pickle or zipfile. No file other than those a call is
asked to write may change. ``derandomize=True``: the same examples on every run.
"""
import contextlib
import hashlib
import io
import json
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst
from PIL import Image
from test_data import _fake_cifar10, _write_folder, _write_tar

import minieffnet.cli as cli
from minieffnet.checkpoint import save_model, save_training_checkpoint
from minieffnet.data import load_cifar10, load_dataset, read_image
from minieffnet.errors import MinieffnetError
from minieffnet.inference import load_trained_model
from minieffnet.io import load_npz, save_npz_atomic
from minieffnet.model import efficientnet
from minieffnet.safe_text import printable
from minieffnet.train_config import TrainConfig
from minieffnet.training_state import TrainingState

# capsys is function-scoped but safe to share across examples: each reads its output away.
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
OWN_ERRORS = (MinieffnetError, FileNotFoundError)
# The option tests train nothing (stand-ins stop them once the options are accepted): cheap
# enough for more examples, which the many options need.
OPTIONS_FUZZ = settings(FUZZ, max_examples=200)

# --- strategies ------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12)
any_arrays = npst.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_, np.complex64,
                           np.dtype("U3"), np.float16]),
    shape=npst.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    elements=None)


@st.composite
def damaged(draw, data: bytes):
    """``data`` with a few bytes overwritten, then maybe cut short or extended."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 6))):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.sampled_from(["none", "cut", "append"]))
    if cut == "cut":
        out = out[:draw(st.integers(0, len(out)))]
    elif cut == "append":
        out += draw(st.binary(max_size=40))
    return bytes(out)


def _paths(tree, prefix=()):
    """Every key path into a JSON tree (dict keys and list indices)."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) \
        if isinstance(tree, list) else ()
    for k, v in items:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k))


def _edit(tree, path, value, delete):
    """A copy of ``tree`` with the node at ``path`` replaced by ``value`` (or deleted)."""
    tree = json.loads(json.dumps(tree))
    node = tree
    for k in path[:-1]:
        node = node[k]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return tree


def outcome(fn, *args):
    """``fn(*args)``, or the project's own error it raised; anything else fails the test."""
    try:
        return fn(*args)
    except OWN_ERRORS as e:
        return e


def fingerprint(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root``: to see that nothing changed."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def scratch():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


# --- checkpoints -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A model file and a training checkpoint of a tiny network: the valid starting points."""
    root = tmp_path_factory.mktemp("fuzz_checkpoints")
    model = efficientnet("b0", 3, preset="cifar", width=0.1, depth=0.1, resolution=8)
    config = TrainConfig(width=0.1, depth=0.1, resolution=8)
    state = TrainingState(
        model=model.state_dict(), optimizer={}, ema=None, model_rng=model.rng.bit_generator.state,
        loader_rng=np.random.default_rng(0).bit_generator.state, epoch=0, batch=0, step=0,
        totals={"seen": 0.0}, elapsed_s=0.0)
    training = save_training_checkpoint(
        root / "checkpoint.npz", state, model_config=model.config, dtype=model.dtype,
        train_config=config.to_dict(), class_names=["a", "b", "c"], mean=(1.0, 2.0, 3.0),
        std=(4.0, 5.0, 6.0))
    bare = save_model(root / "model.npz", model, {"class_names": ["a", "b", "c"]})
    return {"training": training, "model": bare}


def _check_loaded(result):
    if not isinstance(result, Exception):
        state = result.model.state_dict()
        assert all(np.isfinite(v).all() for v in state.values())


@FUZZ
@given(kind=st.sampled_from(["training", "model"]), data=st.data())
def test_damaged_checkpoint_bytes(checkpoints, kind, data):
    with scratch() as d:
        path = d / "c.npz"
        path.write_bytes(data.draw(damaged(checkpoints[kind].read_bytes())))
        before = fingerprint(d)
        _check_loaded(outcome(load_trained_model, path))
        assert fingerprint(d) == before


@FUZZ
@given(kind=st.sampled_from(["training", "model"]), data=st.data(), value=json_values,
       delete=st.booleans())
def test_any_metadata_field_replaced_or_removed(checkpoints, kind, data, value, delete):
    arrays, meta = load_npz(checkpoints[kind])
    path = data.draw(st.sampled_from(sorted(_paths(meta), key=repr)))
    with scratch() as d:
        bad = save_npz_atomic(d / "c.npz", arrays, _edit(meta, path, value, delete))
        _check_loaded(outcome(load_trained_model, bad))
    # whole-metadata replacements too: a list, a number, a string instead of a dict
    with scratch() as d:
        bad = save_npz_atomic(d / "c.npz", arrays, value)
        _check_loaded(outcome(load_trained_model, bad))


@FUZZ
@given(kind=st.sampled_from(["training", "model"]), data=st.data(), array=any_arrays)
def test_any_array_replaced(checkpoints, kind, data, array):
    arrays, meta = load_npz(checkpoints[kind])
    key = data.draw(st.sampled_from(sorted(arrays)))
    with scratch() as d:
        bad = save_npz_atomic(d / "c.npz", {**arrays, key: array}, meta)
        _check_loaded(outcome(load_trained_model, bad))


# --- the CIFAR loaders -------------------------------------------------------------------------
def _cifar_npz_arrays(rng):
    return {"images": rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8),
            "labels": np.arange(6) % 10, "classes": np.array(
                ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"])}


def _check_dataset_pair(result):
    if not isinstance(result, Exception):
        train, test = result
        assert train.images.dtype == np.uint8 and train.class_names == test.class_names
        assert len(train) > 0 and train.labels.max() < train.num_classes


@FUZZ
@given(split=st.sampled_from(["train", "test"]), key=st.sampled_from(["images", "labels",
                                                                        "classes", "extra"]),
       array=any_arrays | st.none())
def test_cifar_npz_with_any_array(split, key, array):
    rng = np.random.default_rng(0)
    with scratch() as d:
        for s in ("train", "test"):
            arrays = _cifar_npz_arrays(rng)
            if s == split:
                arrays.pop(key, None) if array is None else arrays.__setitem__(key, array)
            np.savez(d / f"cifar10_{s}.npz", **arrays)
        before = fingerprint(d)
        _check_dataset_pair(outcome(load_cifar10, d, False))
        assert fingerprint(d) == before


@pytest.fixture(scope="module")
def cifar_members():
    return _fake_cifar10(np.random.default_rng(0), n_per_batch=3)[0]


batch_like = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(["data", "labels", b"data", b"labels", "x"]),
                    any_arrays | json_values, max_size=3),
)


@FUZZ
@given(data=st.data(), how=st.sampled_from(["bytes", "pickle"]), obj=batch_like)
def test_cifar_extracted_folder_with_a_damaged_batch(cifar_members, data, how, obj):
    member = data.draw(st.sampled_from(sorted(cifar_members)))
    blob = (data.draw(damaged(cifar_members[member])) if how == "bytes"
            else pickle.dumps(obj, protocol=2))
    with scratch() as d:
        _write_folder(d / "cifar-10-batches-py", {**cifar_members, member: blob})
        before = fingerprint(d)
        _check_dataset_pair(outcome(load_cifar10, d, False))
        assert fingerprint(d) == before


@pytest.fixture(scope="module")
def cifar_archive(cifar_members, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz_archive") / "cifar-10-python.tar.gz"
    return _write_tar(path, "cifar-10-batches-py", cifar_members).read_bytes()


@FUZZ
@given(data=st.data())
def test_cifar_archive_damaged(cifar_archive, data):
    with scratch() as d:
        (d / "cifar-10-python.tar.gz").write_bytes(data.draw(damaged(cifar_archive)))
        before = fingerprint(d)
        _check_dataset_pair(outcome(load_cifar10, d, False))
        assert fingerprint(d) == before


def test_cifar_archive_with_unexpected_members_is_refused():
    """A tar whose members are links or folders where batches belong."""
    with scratch() as d:
        path = d / "cifar-10-python.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            for name in ("data_batch_1", "batches.meta"):
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.type = tarfile.SYMTYPE
                info.linkname = "/etc/passwd"
                tar.addfile(info)
        assert isinstance(outcome(load_cifar10, d, False), MinieffnetError)


# --- your own data -----------------------------------------------------------------------------
def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, format="JPEG")
    return {"png": _png(rgb), "jpeg": jpeg.getvalue(), "rgba": _png(np.dstack([rgb, rgb[..., 0]]))}


@FUZZ
@given(kind=st.sampled_from(["png", "jpeg", "rgba", "random"]), data=st.data())
def test_damaged_image_files(images, kind, data):
    blob = (data.draw(st.binary(max_size=200)) if kind == "random"
            else data.draw(damaged(images[kind])))
    with scratch() as d:
        (d / "x.png").write_bytes(blob)
        result = outcome(read_image, d / "x.png")
        if not isinstance(result, Exception):
            assert result.dtype == np.uint8 and result.ndim == 3 and result.shape[2] == 3


@FUZZ
@given(data=st.data())
def test_image_folder_with_a_damaged_image(images, data):
    with scratch() as d:
        for split in ("train", "test"):
            for c in ("a", "b"):
                (d / "data" / split / c).mkdir(parents=True)
                (d / "data" / split / c / "0.png").write_bytes(images["png"])
        (d / "data" / "train" / "b" / "1.jpg").write_bytes(data.draw(damaged(images["jpeg"])))
        before = fingerprint(d / "data")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("XDG_CACHE_HOME", str(d / "cache"))
            _check_dataset_pair(outcome(load_dataset, f"folder:{d / 'data'}"))
        assert fingerprint(d / "data") == before  # only the cache may be written


@FUZZ
@given(split=st.sampled_from(["train", "test"]), key=st.sampled_from(["images", "labels",
                                                                        "classes"]),
       array=any_arrays | st.none())
def test_own_npz_with_any_array(split, key, array):
    rng = np.random.default_rng(0)
    with scratch() as d:
        for s in ("train", "test"):
            arrays = {"images": rng.integers(0, 256, (4, 9, 7, 3), dtype=np.uint8),
                      "labels": np.arange(4) % 2}
            if s == split:
                arrays.pop(key, None) if array is None else arrays.__setitem__(key, array)
            np.savez(d / f"mine_{s}.npz", **arrays)
        before = fingerprint(d)
        _check_dataset_pair(outcome(load_dataset, f"npz:{d / 'mine'}"))
        assert fingerprint(d) == before


# --- the image-folder cache ------------------------------------------------------------------
# A damaged cache must be rebuilt (saying so in at most one line that names it) or refused
# with the project's own error naming it; the folder and everything beside the cache stay as
# they were. A cache whose arrays keep the right dtype and shape but hold other pixels is not
# among the damage drawn here: only its zip CRC (bit rot) gives that away, not its shape.
@pytest.fixture(scope="module")
def folder_cache(images, tmp_path_factory):
    """An image folder (classes a and b: 2 + 3 training images, 1 + 1 test) and its cache."""
    root = tmp_path_factory.mktemp("fuzz_cache")
    for split, n in (("train", 2), ("test", 1)):
        for c in ("a", "b"):
            (root / "data" / split / c).mkdir(parents=True)
            for i in range(n):
                (root / "data" / split / c / f"{i}.png").write_bytes(images["png"])
    (root / "data" / "train" / "b" / "2.jpg").write_bytes(images["jpeg"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        train, test = load_dataset(f"folder:{root / 'data'}")
    [cache] = (root / "cache").rglob("*.npz")
    return {"data": root / "data", "cache": cache.relative_to(root), "bytes": cache.read_bytes(),
            "images": (train.images, test.images), "counts": (len(train), len(test))}


def _load_with_cache(folder_cache, capsys, write):
    """Load a copy of the folder after ``write(cache path)`` put a cache in place, and check
    the outcome: the folder's own images, from the cache as it was (silently) or from a new
    one (written over it, saying why in one line), or an error naming the cache."""
    with scratch() as d:
        shutil.copytree(folder_cache["data"], d / "data")
        cache = d / folder_cache["cache"]
        cache.parent.mkdir(parents=True)
        write(cache)
        before, inode = fingerprint(d / "data"), cache.stat().st_ino
        capsys.readouterr()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("XDG_CACHE_HOME", str(d / "cache"))
            result = outcome(load_dataset, f"folder:{d / 'data'}")
        lines = capsys.readouterr().err.splitlines()
        if isinstance(result, Exception):
            assert str(cache) in str(result) and len(str(result).splitlines()) == 1, result
        else:
            for got, want in zip(result, folder_cache["images"]):
                np.testing.assert_array_equal(got.images, want)
            assert len(lines) == (cache.stat().st_ino != inode), lines  # replaced: new inode
        assert len(lines) <= 1 and all(str(cache) in line for line in lines), lines
        assert fingerprint(d / "data") == before
        assert sorted(d.rglob("*")) == sorted([d / "data", *(d / "data").rglob("*"),
                                               *cache.parents[:3], cache])


@FUZZ
@given(kind=st.sampled_from(["damaged", "random"]), data=st.data())
def test_damaged_cache_bytes(folder_cache, capsys, kind, data):
    blob = (data.draw(damaged(folder_cache["bytes"])) if kind == "damaged"
            else data.draw(st.binary(max_size=300)))
    _load_with_cache(folder_cache, capsys, lambda cache: cache.write_bytes(blob))


def _cache_arrays(folder_cache):
    with scratch() as d:
        (d / "c.npz").write_bytes(folder_cache["bytes"])
        return load_npz(d / "c.npz")


@st.composite
def miscounted_images(draw, counts):
    """uint8 (N, H, W, 3) images with N other than either split's count."""
    n = draw(st.integers(0, 8).filter(lambda n: n not in counts))
    return np.zeros((n, *draw(st.sampled_from([(12, 10), (10, 12), (1, 1)])), 3), np.uint8)


@FUZZ
@given(key=st.sampled_from(["train_images", "test_images", "train_labels", "extra"]),
       data=st.data())
def test_cache_with_any_array(folder_cache, capsys, key, data):
    arrays, meta = _cache_arrays(folder_cache)
    array = data.draw(any_arrays | miscounted_images(folder_cache["counts"]) | st.none())
    arrays.pop(key, None) if array is None else arrays.__setitem__(key, array)
    _load_with_cache(folder_cache, capsys, lambda cache: save_npz_atomic(cache, arrays, meta))


@FUZZ
@given(data=st.data(), value=json_values, delete=st.booleans())
def test_cache_with_any_metadata_field_replaced(folder_cache, capsys, data, value, delete):
    arrays, meta = _cache_arrays(folder_cache)
    path = data.draw(st.sampled_from(sorted(_paths(meta), key=repr)))
    _load_with_cache(folder_cache, capsys, lambda cache: save_npz_atomic(
        cache, arrays, _edit(meta, path, value, delete)))


# --- the command line's options --------------------------------------------------------------
option_values = st.one_of(
    st.text(max_size=6), st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(
        ["0", "-3", "1e9", "1e308", "nan", "inf", "b0", "b9", "cifar", "synthetic",
         "folder:/nowhere", "npz:", "3.5", ""]))


def run_cli(argv, capsys):
    """``(status, stderr, stdout)`` of ``minieffnet argv``; status 2 must come with one line."""
    try:
        status = cli.main(argv)
    except SystemExit as e:  # argparse's own refusals
        status = e.code
    out, err = capsys.readouterr()
    if status != 0:
        assert status == 2, (argv, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, err)
    return status, err, out


def run_cli_writing_nothing(argv, capsys, folder):
    """:func:`run_cli` in ``folder``, checking that no file there changes but the figure
    ``cam`` is asked to write (``cam.png``)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        before = fingerprint(folder)
        status, err, out = run_cli(argv, capsys)
    after = fingerprint(folder)
    if argv[0] == "cam" and status == 0:
        after.pop("cam.png")
    assert after == before
    return status, err, out


INFO_OPTIONS = ["--width", "--depth", "--resolution", "--phi", "--num-classes", "--preset"]


@FUZZ
@given(variant=st.sampled_from(["b0", "b7", "b9", "B1", "x"]),
       options=st.lists(st.tuples(st.sampled_from(INFO_OPTIONS), option_values), max_size=3))
def test_info_options(variant, options, capsys):
    with scratch() as d, pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        run_cli(["info", variant, *[t for pair in options for t in pair]], capsys)
        assert list(d.iterdir()) == []


class _Reached(BaseException):
    """Raised by the stand-in Trainer: the options made a valid TrainConfig."""


TRAIN_OPTIONS = ["--variant", "--preset", "--width", "--depth", "--resolution", "--phi",
                 "--dropout", "--drop-connect", "--dataset", "--train-size", "--test-size",
                 "--cutout", "--epochs", "--batch-size", "--optimizer", "--lr", "--momentum",
                 "--weight-decay", "--schedule", "--warmup", "--label-smoothing", "--ema",
                 "--seed", "--out"]


@FUZZ
@given(options=st.lists(st.tuples(st.sampled_from(TRAIN_OPTIONS), option_values), max_size=4),
       resume=st.booleans())
def test_train_options(options, resume, capsys):
    def stand_in(config, **kwargs):
        assert isinstance(config, TrainConfig)
        raise _Reached

    with scratch() as d, pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        mp.setattr(cli, "Trainer", stand_in)
        argv = ["train", *[t for pair in options for t in pair], *(["--resume"] * resume)]
        with contextlib.suppress(_Reached):
            run_cli(argv, capsys)
        capsys.readouterr()
        assert list(d.iterdir()) == []  # nothing written before the run starts


@FUZZ
@given(command=st.sampled_from(["predict", "evaluate", "cam"]),
       options=st.lists(st.tuples(st.sampled_from(["--top", "--test-size", "--batch-size",
                                                   "--dataset", "--test-images"]),
                                  option_values), max_size=2))
def test_predict_evaluate_cam_options(checkpoints, images, command, options, capsys):
    with scratch() as d:
        (d / "x.png").write_bytes(images["png"])
        files = ["x.png"] if command == "predict" else ["--images", "x.png"] \
            if command == "cam" else []
        argv = [command, str(checkpoints["training"]), *files,
                *[t for pair in options for t in pair], *(["--out", "cam.png"]
                                                          if command == "cam" else [])]
        run_cli_writing_nothing(argv, capsys, d)


# Strings meant to break a terminal or forge a line of output, and any other text.
odd_text = st.text(st.sampled_from(list("\n\r\t\x00\x07\x1b[]%\u202e\u2028\x85 a"))
                   | st.characters(), max_size=12)
# What a command prints besides its result lines: the checkpoint line, the image's name.
_RESULT_LINES = {"predict": 2 + 3, "cam": 3 + 1}


@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # cam's figure titles
@FUZZ
@given(kind=st.sampled_from(["training", "model"]),
       command=st.sampled_from(["predict", "evaluate", "cam"]),
       damage=st.sampled_from(["dtype", "non-finite", "class names"]), data=st.data())
def test_a_bad_checkpoint_through_the_command_line(checkpoints, images, kind, command, damage,
                                                    data, capsys):
    """Weights of another dtype or not finite give the command's one-line error naming the
    checkpoint, status 2; class names of any text are printed escaped (no control
    character reaches the terminal, no line is added) or refused in one line; nothing is
    written but the figure cam is asked for."""
    arrays, meta = load_npz(checkpoints[kind])
    weights = sorted(k for k in arrays if kind == "model" or k.startswith("model."))
    if damage == "dtype":
        key = data.draw(st.sampled_from(weights))
        dtype = data.draw(st.sampled_from([np.int64, np.int32, np.uint8, np.bool_,
                                           np.float16]))
        arrays = {**arrays, key: arrays[key].astype(dtype)}
    elif damage == "non-finite":
        key = data.draw(st.sampled_from(weights))
        bad = arrays[key].copy()
        bad.flat[data.draw(st.integers(0, bad.size - 1))] = data.draw(
            st.sampled_from([np.nan, np.inf, -np.inf]))
        arrays = {**arrays, key: bad}
    else:
        # mostly three names (a valid list), else anything in their place
        names = data.draw(st.lists(odd_text, min_size=3, max_size=3) if data.draw(
            st.integers(0, 3)) else json_values)
        meta = ({**meta, "extra": {"class_names": names, "mean": [1, 2, 3], "std": [4, 5, 6]}}
                if kind == "model" else {**meta, "class_names": names})
    with scratch() as d:
        save_npz_atomic(d / "c.npz", arrays, meta)
        (d / "x.png").write_bytes(images["png"])
        argv = {"predict": ["predict", "c.npz", "x.png"], "evaluate": ["evaluate", "c.npz"],
                "cam": ["cam", "c.npz", "--images", "x.png", "--out", "cam.png"]}[command]
        status, err, out = run_cli_writing_nothing(argv, capsys, d)
    assert err.rstrip("\n").isprintable() and all(line.isprintable()
                                                  for line in out.splitlines()), (err, out)
    if damage != "class names":
        assert status == 2 and err.startswith(f"minieffnet {command}: error: checkpoint "
                                              "c.npz: array "), err
    elif status == 0:
        assert len(out.splitlines()) == _RESULT_LINES[command], out


# --- path and numeric options: the project's own error, naming the option ----------------------
def names(option, err, value=None):
    """Whether the one-line ``err`` names ``option``: by its name, dashes read as underscores
    or spaces (``--batch-size`` is batch_size) and one of a list as one (``--targets``: "a
    target"); ``--warmup`` is warmup_epochs. A refused path may instead be named by its value,
    as given or expanded (one of blanks only is nothing to look for)."""
    text = err.replace("-", "_").replace(" ", "_")
    name = option.lstrip("-").replace("-", "_")
    if name in text or name.removesuffix("s") in text:
        return True
    if value is None or not value.strip():
        return value is not None
    shown = {value, os.path.expanduser(value), str(Path(os.path.expanduser(value)))}
    # An error line shows a control character escaped (minieffnet.safe_text), so look for
    # the escaped form too.
    return any(" ".join(v.split()) in err or printable(v) in err for v in shown)


def refused(argv, option, capsys, value=None):
    """Run ``minieffnet argv``; False if the stand-in was reached (the options are valid),
    True if refused: with status 2 in one line (:func:`run_cli`) that names ``option`` (or the
    path ``value``), and with ``--debug`` as the project's own exception (or argparse's
    exit)."""
    try:
        status, err, _ = run_cli(argv, capsys)
    except _Reached:
        capsys.readouterr()
        return False
    if status == 0:
        return False
    assert names(option, err, value), (argv, err)
    with contextlib.suppress(SystemExit):  # argparse's refusals exit with --debug too
        with pytest.raises(OWN_ERRORS):
            cli.main(["--debug", *argv])
    capsys.readouterr()
    return True


@contextlib.contextmanager
def stand_ins(d):
    """Run the command line in ``d`` (``$HOME`` is ``d/home``) with a Trainer, a study's trial
    runner and a checkpoint loader that stop it (:class:`_Reached`) once its options are
    accepted: nothing trains, and what a refusal leaves is all there is to see."""
    def reached(*args, **kwargs):
        raise _Reached

    (d / "home").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        mp.setenv("HOME", str(d / "home"))
        for target in ("minieffnet.cli.Trainer", "minieffnet.cli.load_trained_model",
                       "minieffnet.experiments.studies.run_trials"):
            mp.setattr(target, reached)
        yield


def listing(root: Path) -> dict[str, str]:
    """{relative path: sha256, or "folder"} of everything under ``root``."""
    return {**fingerprint(root), **{str(p.relative_to(root)): "folder"
                                    for p in root.rglob("*") if p.is_dir()}}


def changed(root: Path, before: dict, out: str | None = None) -> set[str]:
    """What changed under ``root`` since its :func:`listing` ``before``, but the folder
    ``out`` (and what is in it) that a study was asked to make."""
    after = listing(root)
    kept = (root / out).resolve() if out is not None else None
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
            and not (kept and (root / k).resolve().is_relative_to(kept))}


# Names a path option may be given: any (no "/": nothing outside the scratch folder, where
# a study's folder would be made), "~" forms (home is in the scratch folder; no such user),
# empty, a NUL, the scratch folder itself and a file and a folder in it.
path_values = st.one_of(
    st.text(st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), max_size=8)
    .filter(lambda t: t != ".."),
    st.sampled_from(["", "~", "~/", "~/run", "~no-such-user-minieffnet",
                     "~no-such-user-minieffnet/run", "a\0b", ".", "x.png", "home", "new/run"]))
# command -> (its path options, the other arguments it needs)
PATH_OPTIONS = {
    "train": (["--out", "--data-dir", "--from-run", "--dataset"], []),
    "budget-curve": (["--out", "--data-dir", "--dataset"], ["--epochs", "1"]),
    "predict": (["images"], ["CHECKPOINT"]),
    "cam": (["--out", "--images"], ["CHECKPOINT", "--images", "x.png"]),
}


@OPTIONS_FUZZ
@given(command=st.sampled_from(sorted(PATH_OPTIONS)), data=st.data(), value=path_values,
       kind=st.sampled_from(["folder:", "npz:"]), report=st.booleans())
def test_path_options(checkpoints, images, command, data, value, kind, report, capsys):
    options, needed = PATH_OPTIONS[command]
    option = data.draw(st.sampled_from(options))
    argv = [command, *[str(checkpoints["training"]) if a == "CHECKPOINT" else a for a in needed]]
    if option == "images":
        argv += ["--", value]  # a value that starts with "-" is still a file name
    elif option == "--images":
        argv[argv.index("--images") + 1] = value
    else:
        argv.append(f"{option}={kind + value if option == '--dataset' else value}")
    if command == "budget-curve":  # --report: a study to read at --out, none to make
        argv += ["--report"] * report if option == "--out" else ["--out=study"]
    with scratch() as d, stand_ins(d):
        (d / "x.png").write_bytes(images["png"])
        before = listing(d)
        was_refused = refused(argv, option, capsys, value)
        study = os.path.expanduser(value) if option == "--out" else "study"
        left = changed(d, before, None if was_refused or command != "budget-curve" else study)
        assert not left, (argv, left)


def _numbers(draw_from):
    return st.one_of(option_values, st.floats(-1e12, 1e12).map(repr),
                     st.integers(-3, 3).map(str), st.sampled_from(draw_from))


# command -> (its numeric options, the other arguments it needs); solving one compound target
# keeps a compare-scaling that is accepted quick
NUMERIC_OPTIONS = {
    "train": (["--width", "--depth", "--resolution", "--phi", "--dropout", "--drop-connect",
               "--train-size", "--test-size", "--val-size", "--cutout", "--epochs",
               "--batch-size", "--lr", "--momentum", "--weight-decay", "--warmup",
               "--label-smoothing", "--ema", "--progressive-from", "--progressive-stages",
               "--progressive-reg-from", "--seed", "--tta", "--time-budget"],
              ["--schedule", "warmup_cosine"]),
    "info": (["--width", "--depth", "--resolution", "--phi", "--num-classes"], []),
    "compare-scaling": (["--alpha", "--beta", "--gamma", "--targets", "--long-targets",
                         "--seeds", "--jobs", "--epochs", "--batch-size", "--lr",
                         "--train-size", "--test-size", "--width", "--depth", "--resolution"],
                        ["--out", "study", "--strategies", "compound"]),
    "grid-search": (["--step", "--tol", "--rounds", "--seeds"], ["--out", "study"]),
    "budget-curve": (["--resolutions", "--epochs"], ["--out", "study"]),
    "width-per-baseline": (["--widths", "--baselines"], ["--out", "study"]),
}


@OPTIONS_FUZZ
@given(command=st.sampled_from(sorted(NUMERIC_OPTIONS)), data=st.data(),
       value=_numbers(["1e-6", "0.005", "1e308", "-1", "1e9", "0.999", "1", "2,1.3", "1,-1",
                       "nan,1"]))
def test_numeric_options(command, data, value, capsys):
    options, needed = NUMERIC_OPTIONS[command]
    option = data.draw(st.sampled_from(options))
    argv = [command, *needed, f"{option}={value}"]
    if command == "compare-scaling" and option != "--targets":
        argv += ["--targets", "2"]
    with scratch() as d, stand_ins(d):
        before = listing(d)
        was_refused = refused(argv, option, capsys)
        left = changed(d, before, None if was_refused else "study")
        assert not left, (argv, left)


# --- study records -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study_record(tmp_path_factory):
    """A finished one-trial study (its folder, the trial, and its record's text)."""
    from minieffnet.experiments.trials import Trial, base_model, run_trial, train_config_for
    root = tmp_path_factory.mktemp("study")
    recipe = TrainConfig(width=0.1, depth=0.1, resolution=16, train_size=100, test_size=50,
                         epochs=1, batch_size=50)
    trial = Trial("base", 0, train_config_for(recipe, base_model(recipe), 0,
                                              root / "trials" / "base-seed0"), {})
    run_trial(trial)
    return root, trial, (trial.run_dir / "trial.json").read_text()


@FUZZ
@given(field=st.sampled_from(["model", "seed", "epochs", "flops", "params", "width", "depth",
                              "resolution", "top1", "top5", "val_top1", "train_top1",
                              "train_time_s", "run_dir", "train_config", "code_version",
                              "activations"]),
       value=json_values | st.sampled_from([float("nan"), float("inf"), -0.5, 1.5, 5.0]),
       drop=st.booleans())
def test_a_study_record_of_any_shape_is_read_or_refused_naming_its_file(study_record, field,
                                                                       value, drop):
    """Any field of a finished trial's record replaced (by any JSON value, NaN, infinity or a
    number out of range) or removed: the record is read back unchanged in meaning, or refused
    with the project's own error naming the file; never an internal error, never a row with
    a top-1 outside [0, 1]."""
    from minieffnet.experiments.trials import read_trial_record
    root, trial, text = study_record
    row = json.loads(text)
    if drop:
        row.pop(field, None)
    else:
        row[field] = value
    path = trial.run_dir / "trial.json"
    path.write_text(json.dumps(row))
    try:
        read = read_trial_record(path, trial, root)
    except MinieffnetError as e:
        assert str(path) in str(e) and "\n" not in str(e), e
    else:
        assert all(0 <= read[k] <= 1 for k in ("top1", "top5") if k in read)
        assert (read["model"], read["seed"]) == ("base", 0)
        assert (root / read["run_dir"]).resolve() == trial.run_dir.resolve()
    finally:
        path.write_text(text)
