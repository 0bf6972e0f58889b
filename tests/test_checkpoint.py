"""Checkpoints (minieffnet.checkpoint): model files' and training checkpoints' round trips,
config validation, refusal of foreign, corrupt, pickled and non-finite files, and atomic
writes."""
import dataclasses
import json
import pathlib
import re

import numpy as np
import pytest

from minieffnet.checkpoint import (config_from_dict, config_to_dict, evaluation_weights,
                                   load_model, load_weights, read_training_checkpoint,
                                   save_model, save_training_checkpoint, training_model,
                                   training_model_config, training_state)
from minieffnet.errors import BadFileError
from minieffnet.inference import load_trained_model
from minieffnet.io import load_npz, remove_temporaries, save_npz_atomic
from minieffnet.model import EfficientNet
from minieffnet.ops._checks import NonFiniteError
from minieffnet.optim import EMA, SGD
from minieffnet.scaling import make_config
from minieffnet.training_state import TrainingState


def small(num_classes=7, seed=0, dtype=np.float32, **kw):
    """A narrow, shallow B0 (fast to build and run) with B0's nonzero dropout."""
    options = dict(width=0.25, depth=0.25, preset="cifar", resolution=16)
    options.update(kw)
    return EfficientNet(make_config("b0", num_classes, **options), seed=seed, dtype=dtype)


def trained_state(model, rng):
    """Move the BatchNorm running statistics off their defaults with one train-mode pass."""
    model.train()(rng.standard_normal((2, 3, 16, 16)).astype(model.dtype))
    return model


@pytest.fixture
def x(rng):
    return rng.standard_normal((2, 3, 16, 16)).astype(np.float32)


# --- round trips -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_gives_identical_logits_and_metadata(tmp_path, rng, dtype):
    model = trained_state(small(dtype=dtype), rng)
    path = save_model(tmp_path / "model.npz", model, extra_meta={"epoch": 3, "acc": 0.5})
    loaded, extra = load_model(path, return_meta=True)
    assert extra == {"epoch": 3, "acc": 0.5}
    assert loaded.config == model.config and loaded.dtype == np.dtype(dtype)
    state, restored = model.state_dict(), loaded.state_dict()
    assert state.keys() == restored.keys()
    assert all(np.array_equal(state[k], restored[k]) and restored[k].dtype == dtype
               for k in state)
    x = rng.standard_normal((2, 3, 16, 16)).astype(dtype)
    np.testing.assert_array_equal(loaded.eval()(x), model.eval()(x))


def test_rng_state_is_restored_so_dropout_masks_continue(tmp_path, x):
    model = small()
    save_model(tmp_path / "m.npz", model)
    loaded = load_model(tmp_path / "m.npz")
    # Training mode draws dropout and stochastic-depth masks from the shared Generator.
    np.testing.assert_array_equal(loaded.train()(x), model.train()(x))
    np.testing.assert_array_equal(loaded(x), model(x))


def test_load_weights_into_a_matching_model(tmp_path, rng, x):
    model = trained_state(small(seed=1), rng)
    save_model(tmp_path / "m.npz", model)
    # Another seed and another dropout: the same network, so the weights fit.
    other = small(seed=2, dropout=0.5)
    assert load_weights(other, tmp_path / "m.npz") is other
    np.testing.assert_array_equal(other.eval()(x), model.eval()(x))


def test_config_dict_round_trip_and_validation():
    config = make_config("b3", 10, preset="cifar")
    d = json.loads(json.dumps(config_to_dict(config)))
    assert isinstance(d["blocks"], list) and isinstance(d["blocks"][0], dict)
    assert config_from_dict(d) == config
    with pytest.raises(ValueError, match=r"missing fields \['bn_eps'\], unknown fields \['eps'\]"):
        config_from_dict({**{k: v for k, v in d.items() if k != "bn_eps"}, "eps": 1e-3})
    broken = dict(d, blocks=[dict(d["blocks"][0], kernel_size=3)] + d["blocks"][1:])
    with pytest.raises(ValueError, match=r"block 0: missing fields \[\], unknown fields "
                                         r"\['kernel_size'\]"):
        config_from_dict(broken)
    with pytest.raises(ValueError, match="block 0 takes 24 channels but receives 40"):
        config_from_dict(dict(d, blocks=d["blocks"][1:]))


# --- refusals --------------------------------------------------------------------------------
def test_other_architecture_is_refused_with_the_differences(tmp_path):
    path = save_model(tmp_path / "b0.npz", EfficientNet(make_config("b0", 10)))
    target = EfficientNet(make_config("b1", 10))
    before = target.state_dict()
    with pytest.raises(ValueError) as err:
        load_weights(target, path)
    message = str(err.value)
    assert "holds b0 (width 1, depth 1, 16 blocks, 10 classes)" in message
    assert "but the model is b1 (width 1, depth 1.1, 23 blocks" in message
    assert "depth 1.0 vs 1.1" in message and "16 vs 23 blocks" in message
    assert all(np.array_equal(v, target.state_dict()[k]) for k, v in before.items())

    with pytest.raises(ValueError, match="num_classes 7 vs 3"):
        load_weights(small(num_classes=3), save_model(tmp_path / "s.npz", small()))


def test_truncated_file_is_refused_naming_it(tmp_path):
    path = save_model(tmp_path / "cut.npz", small())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.npz is corrupt or truncated"):
        load_model(path)
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        load_model(tmp_path / "absent.npz")


def test_foreign_npz_files_are_refused(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, weight=np.zeros(3))
    with pytest.raises(ValueError, match=r"plain\.npz has no metadata: not a minieffnet"):
        load_model(plain)
    # A minieffnet file of another kind (e.g. something else written through minieffnet.io).
    other = save_npz_atomic(tmp_path / "other.npz", {"w": np.zeros(3)}, {"format": "x"})
    with pytest.raises(ValueError, match=r"other\.npz is not a minieffnet model checkpoint"):
        load_model(other)
    # Right format, wrong tensors.
    meta = {"format": "minieffnet.model", "version": 1, "dtype": "float32",
            "config": config_to_dict(small().config),
            "rng_state": np.random.default_rng(0).bit_generator.state, "extra": {}}
    wrong = save_npz_atomic(tmp_path / "wrong.npz", {"w": np.zeros(3)}, meta)
    with pytest.raises(ValueError, match=r"wrong\.npz: load_state_dict: missing keys"):
        load_model(wrong)
    newer = save_npz_atomic(tmp_path / "newer.npz", {}, dict(meta, version=2))
    with pytest.raises(ValueError, match="format version 2"):
        load_model(newer)


class _Payload:
    """Unpickling this creates a file: proof that a loader ran code from the checkpoint."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_pickled_object_arrays_are_refused_without_running_them(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.npz"
    state = small().state_dict()
    state["stem.0.weight"] = np.array([_Payload(marker)], dtype=object)
    meta = json.dumps({"format": "minieffnet.model"}).encode()
    np.savez(path, **state, __meta__=np.frombuffer(meta, np.uint8))  # np.savez pickles objects
    with pytest.raises(ValueError, match=r"evil\.npz .*(pickle|[Oo]bject)"):
        load_model(path)
    assert not marker.exists()


# --- training checkpoints ------------------------------------------------------------------
def state_of(model, optimizer, ema=None):
    """A TrainingState of ``model`` (position, totals and loader stream made up)."""
    return TrainingState(
        model=model.state_dict(), optimizer=optimizer.state_dict(),
        ema=None if ema is None else ema.state_dict(),
        model_rng=model.rng.bit_generator.state,
        loader_rng=np.random.default_rng(5).bit_generator.state,
        epoch=1, batch=2, step=3, totals={"seen": 8.0}, elapsed_s=1.5)


def save_training(path, model, ema=None):
    """A training checkpoint of ``model`` after one SGD step (momentum state is non-trivial)."""
    params = model.parameters()
    for p in params:
        p.grad = np.ones_like(p.data)
    optimizer = SGD(params, 0.1)
    optimizer.step()
    return save_training_checkpoint(
        path, state_of(model, optimizer, ema), model_config=model.config, dtype=model.dtype,
        train_config={"lr": 0.1}, class_names=[str(i) for i in range(7)],
        mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0)), optimizer


def test_training_checkpoint_round_trip(tmp_path, rng):
    model = trained_state(small(), rng)
    ema = EMA(model.parameters(), 0.9, buffers=dict(model.named_buffers()))
    path, optimizer = save_training(tmp_path / "checkpoint.npz", model, ema)
    parts, meta = read_training_checkpoint(path)
    assert set(parts) == {"model", "optimizer", "ema"}
    state = model.state_dict()
    assert parts["model"].keys() == state.keys()
    assert all(np.array_equal(parts["model"][k], state[k]) for k in state)
    assert parts["optimizer"].keys() == optimizer.state_dict().keys()
    # the weights a run reports with are the EMA's (parameters and BatchNorm statistics)
    reported = evaluation_weights(parts)
    assert reported.keys() == state.keys()
    assert all(np.array_equal(reported[k], ema.shadow[k]) for k in state)
    assert not np.array_equal(reported["classifier.weight"], state["classifier.weight"])
    assert training_model_config(meta, path) == model.config
    assert meta["position"] == {"epoch": 1, "batch": 2, "step": 3}
    assert meta["normalization"] == {"mean": [1.0, 2.0, 3.0], "std": [4.0, 5.0, 6.0]}
    assert meta["rng"]["model"] == model.rng.bit_generator.state
    # without an EMA: no ema part, and the model's own weights are reported
    parts, _ = read_training_checkpoint(save_training(tmp_path / "plain.npz", model)[0])
    assert parts["ema"] == {} and evaluation_weights(parts) is parts["model"]


@pytest.mark.parametrize("with_ema", [True, False], ids=["ema", "no-ema"])
def test_training_state_reads_back_what_was_saved(tmp_path, rng, with_ema):
    model = trained_state(small(), rng)
    ema = EMA(model.parameters(), 0.9, buffers=dict(model.named_buffers())) if with_ema else None
    path, optimizer = save_training(tmp_path / "checkpoint.npz", model, ema)
    saved, read = state_of(model, optimizer, ema), training_state(*read_training_checkpoint(path))
    for part in ("model", "optimizer", "ema"):
        a, b = getattr(saved, part), getattr(read, part)
        assert (a is None) == (b is None) == (part == "ema" and not with_ema)
        if a is not None:
            assert a.keys() == b.keys()
            assert all(np.array_equal(a[k], b[k]) for k in a), part
    assert dataclasses.replace(read, model={}, optimizer={}, ema=None) == dataclasses.replace(
        saved, model={}, optimizer={}, ema=None)


def test_each_format_refuses_the_other_and_non_finite_weights(tmp_path, rng):
    model = small()
    training, _ = save_training(tmp_path / "checkpoint.npz", model)
    with pytest.raises(ValueError, match=r"checkpoint\.npz is not a minieffnet model checkpoint "
                                         r"\(format 'minieffnet\.train'"):
        load_model(training)
    model_file = save_model(tmp_path / "model.npz", model)
    with pytest.raises(ValueError, match=r"model\.npz is not a minieffnet training checkpoint "
                                         r"\(format 'minieffnet\.model'"):
        read_training_checkpoint(model_file)
    before = training.read_bytes()
    model.classifier.weight.data[0, 0] = np.inf
    with pytest.raises(NonFiniteError, match=r"model\.classifier\.weight holds NaN or infinity"):
        save_training(training, model)
    assert training.read_bytes() == before  # the last good state is kept


# --- atomic writes ---------------------------------------------------------------------------
def test_failed_write_leaves_the_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch, x):
    path = save_model(tmp_path / "ckpt.npz", small(seed=1))
    expected = load_model(path).eval()(x)

    def crash_mid_write(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")  # some bytes reach the temp file, then the "crash"
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        save_model(path, small(seed=2))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]
    np.testing.assert_array_equal(load_model(path).eval()(x), expected)


def test_checkpoint_file_gets_ordinary_permissions(tmp_path):
    import os
    umask = os.umask(0o022)
    try:
        path = save_npz_atomic(tmp_path / "c.npz", {"a": np.zeros(2)}, {"k": 1})
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


# --- untrusted files: non-finite arrays, malformed metadata, other formats --------------------
def _rewrite(src, dst, edit):
    """Copy checkpoint ``src`` to ``dst`` with ``edit(arrays, meta)`` applied (in place)."""
    arrays, meta = load_npz(src)
    edit(arrays, meta)
    return save_npz_atomic(dst, arrays, meta)


def test_non_finite_arrays_are_refused_by_every_reader(tmp_path):
    model_file = save_model(tmp_path / "model.npz", small())
    training, _ = save_training(tmp_path / "checkpoint.npz", small())

    def poison(key):
        return lambda arrays, meta: arrays[key].flat.__setitem__(0, np.nan)

    momentum = "optimizer.momentum_buffer.stem.0.weight"
    for path, key, read in [(model_file, "classifier.weight", load_model),
                            (training, "model.classifier.weight", read_training_checkpoint),
                            (training, momentum, load_trained_model)]:
        bad = _rewrite(path, tmp_path / "bad.npz", poison(key))
        with pytest.raises(BadFileError, match=rf"bad\.npz: array '{re.escape(key)}' holds NaN"):
            read(bad)


@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.uint8, np.bool_, np.float16])
def test_weights_that_are_not_float32_or_float64_are_refused_naming_the_array(tmp_path, dtype):
    """Integer weights would be cast into the network with their fractions lost: every
    reader refuses them, naming the file and the array; the optimiser's integer step counts
    and float64 weights in a float32 network stay fine."""
    model_file = save_model(tmp_path / "model.npz", small())
    model = small()
    training, _ = save_training(tmp_path / "checkpoint.npz", model,
                                EMA(model.parameters(), 0.9, buffers=dict(model.named_buffers())))

    def retype(key):
        return lambda arrays, meta: arrays.__setitem__(key, arrays[key].astype(dtype))

    for path, key, read in [(model_file, "classifier.weight", load_model),
                            (model_file, "head.1.running_var", load_trained_model),
                            (training, "model.stem.0.weight", read_training_checkpoint),
                            (training, "ema.shadow.classifier.bias", load_trained_model)]:
        bad = _rewrite(path, tmp_path / "bad.npz", retype(key))
        with pytest.raises(BadFileError, match=rf"checkpoint .*bad\.npz: array "
                                               rf"'{re.escape(key)}' has dtype "
                                               rf"{np.dtype(dtype)}; weights must be float32 "
                                               r"or float64"):
            read(bad)
    wider = _rewrite(training, tmp_path / "wide.npz", lambda arrays, meta: arrays.update(
        {"model.stem.0.weight": arrays["model.stem.0.weight"].astype(np.float64),
         "ema.num_updates": np.int32(3)}))
    parts, meta = read_training_checkpoint(wider)
    assert training_model(meta, parts, wider).stem[0].weight.data.dtype == np.float32


def _set(path, value):
    """An edit that sets the metadata at ``path`` (a tuple of keys) to ``value``."""
    def edit(arrays, meta):
        d = meta
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return edit


def _delete(path):
    def edit(arrays, meta):
        d = meta
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]
    return edit


TRAINING_META_CASES = [
    (_set(("position",), "x"), "'position' is invalid: must be a dict"),
    (_set(("position", "epoch"), -1), "'position' is invalid: epoch must be integers >= 0"),
    (_delete(("normalization", "mean")), "'normalization' is invalid: missing key 'mean'"),
    (_set(("normalization", "std"), [1, 0, 1]), "std must be 3 finite positive numbers"),
    (_set(("class_names",), ["a"]), "'class_names' is invalid: class_names must be a list of 7"),
    (_set(("dtype",), ["float32"]), "has dtype \\['float32'\\]"),
    (_set(("model_config", "blocks", 0, "kernel"), "3"), "kernel must be an odd positive"),
    (_set(("model_config", "blocks", 0, "stride"), 3), "stride must be 1 or 2"),
    (_set(("model_config", "width"), None), "width must be a positive number"),
    (_set(("model_config", "blocks"), {}), "blocks must be a non-empty list"),
    (_set(("model_config", "num_classes"), 10**9), "'model_config' is invalid: the network it "
                                                  "describes .* needs at least"),
    (_set(("rng",), []), "'rng' is invalid"),
    (_set(("rng", "model"), {"bit_generator": "os.system"}), "'rng.model' is an unknown RNG"),
    (_set(("rng", "model", "state"), "x"), "'rng.model' is invalid"),
    (_set(("epoch_totals", "seen"), float("inf")), "'epoch_totals' is invalid: seen must be"),
    (_set(("elapsed_s",), "1"), "'elapsed_s' is invalid"),
    (_delete(("rng",)), "lacks metadata \\['rng'\\]"),
]


@pytest.mark.parametrize("edit, message", TRAINING_META_CASES)
def test_malformed_training_metadata_is_named_with_its_file(tmp_path, edit, message):
    training, _ = save_training(tmp_path / "checkpoint.npz", small())
    bad = _rewrite(training, tmp_path / "bad.npz", edit)
    with pytest.raises(BadFileError, match=rf"checkpoint .*bad\.npz.*{message}"):
        read_training_checkpoint(bad)


@pytest.mark.parametrize("edit, message", [
    (_set(("extra",), []), "'extra' must be a dict"),
    (_set(("extra",), {"class_names": [1] * 7}), "'extra' is invalid: class_names must be"),
    (_set(("extra",), {"mean": [0, 0, 0]}), "'extra' is invalid: normalization std must be"),
    (_set(("rng_state",), None), "'rng_state' is an unknown RNG state"),
    (_set(("config", "num_classes"), 2.5), "num_classes must be a positive integer"),
])
def test_malformed_model_file_metadata_is_named_with_its_file(tmp_path, edit, message):
    bad = _rewrite(save_model(tmp_path / "model.npz", small()), tmp_path / "bad.npz", edit)
    with pytest.raises(BadFileError, match=rf"checkpoint .*bad\.npz.*{message}"):
        load_trained_model(bad)


def test_a_train_config_that_is_not_one_is_named(tmp_path):
    training, _ = save_training(tmp_path / "checkpoint.npz", small())
    with pytest.raises(BadFileError, match=r"'train_config' is invalid: TrainConfig: missing"):
        load_trained_model(training)  # save_training stores {"lr": 0.1}


def test_files_that_are_not_npz_archives_are_refused(tmp_path):
    npy = tmp_path / "weights.npy"
    np.save(npy, np.zeros(3))
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    for path in (npy, text):
        with pytest.raises(BadFileError, match=rf"{path.name} is corrupt or truncated: not a "
                                               r"\.npz \(zip\) archive"):
            load_model(path)


def test_temporaries_of_killed_writers_are_removed_only_beside_their_file(tmp_path):
    path = save_npz_atomic(tmp_path / "checkpoint.npz", {"a": np.zeros(2)}, {})
    stale = [tmp_path / ".checkpoint.npz.abc123.tmp", tmp_path / ".checkpoint.npz.tmp"]
    keep = [tmp_path / ".other.npz.abc.tmp", tmp_path / "checkpoint.npz.tmp"]
    for p in stale + keep:
        p.write_bytes(b"half")
    assert sorted(remove_temporaries(path)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["checkpoint.npz", *(p.name for p in keep)])


def test_a_run_removes_what_a_killed_checkpoint_write_left(tmp_path):
    """kill -9 during save_npz_atomic leaves .checkpoint.npz.<random>.tmp: the next session
    of that run folder (new, resumed or overwritten) removes it; other files stay."""
    from minieffnet.train import Trainer
    from test_train import TINY

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    leftover = run_dir / ".checkpoint.npz.k9x2.tmp"
    leftover.write_bytes(b"PK half a zip")
    (run_dir / "notes.txt").write_text("mine")
    Trainer(dataclasses.replace(TINY, out_dir=str(run_dir)), progress=False, verbose=False)
    assert sorted(p.name for p in run_dir.iterdir()) == ["notes.txt"]
