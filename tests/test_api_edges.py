"""Model and op API edges: backward without a forward, a failed forward leaves the
model unchanged, BatchNorm refuses statistics that overflow, empty batches, the loss at
float32's limits, one stride check for every convolution, the up-front memory estimate, the
dtypes a model is built in, and atomic writes that no planted link can redirect."""
import dataclasses
import json

import numpy as np
import pytest

import minieffnet as me
from minieffnet import ops
from minieffnet.errors import (BadOptionError, MinieffnetError, NoForwardError, NonFiniteError,
                               TooLargeError)
from minieffnet.io import save_npz_atomic, write_atomic, write_text_atomic
from minieffnet.nn.layers import BatchNorm2d, Linear
from minieffnet.scaling import (check_memory, count_parameters, make_config, memory_estimate,
                                physical_memory)
from minieffnet.viz import plot_training_curves


def tiny(**kw):
    return me.efficientnet("b0", 5, preset="cifar", width=0.1, depth=0.1, resolution=16, **kw)


def batch(rng, n=4, size=16):
    return rng.standard_normal((n, 3, size, size)).astype(np.float32)


def snapshot(model):
    """Everything a forward may change: buffers and the random stream."""
    return ({k: v.copy() for k, v in model.named_buffers()}, model.rng.bit_generator.state)


# --- backward without a forward ----------------------------------------------------------
def test_backward_before_any_forward_names_the_layer(rng):
    model = tiny()
    with pytest.raises(NoForwardError, match=r"Linear\.backward: no forward pass"):
        model.backward(np.ones((2, 5), np.float32))
    layer = BatchNorm2d(3)
    with pytest.raises(NoForwardError, match=r"BatchNorm2d\.backward: no forward pass"):
        layer.backward(np.ones((2, 3, 4, 4), np.float32))
    assert issubclass(NoForwardError, MinieffnetError) and issubclass(NoForwardError, ValueError)


# --- a failed forward leaves the model unchanged -------------------------------------------
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_failed_training_forward_changes_no_statistic_nor_random_stream(rng):
    model = tiny(drop_connect=0.5).train()
    x = batch(rng)
    model(x)  # a good pass: statistics and caches of this batch
    before = snapshot(model)
    # The head runs after every block's BatchNorm has updated its running statistics: an
    # infinite head weight makes the forward fail there, late.
    model.head[0].weight.data[0, 0] = np.inf
    with pytest.raises(NonFiniteError):
        model(x)
    after = snapshot(model)
    assert after[1] == before[1]
    assert all(np.array_equal(after[0][k], before[0][k]) for k in before[0])
    # The caches of the failed pass are gone: no gradient mixing two passes.
    with pytest.raises(NoForwardError):
        model.backward(np.ones((4, 5), np.float32))


def test_interrupted_forward_is_rolled_back_too(rng, monkeypatch):
    model = tiny().train()
    before = snapshot(model)

    def ctrl_c(features):
        raise KeyboardInterrupt

    monkeypatch.setattr(model.pool, "forward", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        model(batch(rng))
    after = snapshot(model)
    assert all(np.array_equal(after[0][k], before[0][k]) for k in before[0])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_batchnorm_refuses_a_variance_that_overflows_its_dtype(backend):
    """±3e38 is finite in float32, but its variance (9e76) is not: refused, statistics kept."""
    layer = BatchNorm2d(2)
    x = np.zeros((2, 2, 2, 2), np.float32)
    x[0], x[1] = 3e38, -3e38
    with me.use_backend(backend), pytest.raises(NonFiniteError, match="batch variance"):
        layer(x)
    assert np.array_equal(layer.running_var, np.ones(2, np.float32))
    assert np.array_equal(layer.running_mean, np.zeros(2, np.float32))


def test_empty_batch_is_refused_clearly(rng):
    with pytest.raises(ValueError, match="at least one image, got shape"):
        tiny()(np.zeros((0, 3, 16, 16), np.float32))


# --- the loss at float32's limits ------------------------------------------------------------
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_is_finite_for_any_finite_float32_logits(smoothing):
    big = np.finfo(np.float32).max
    logits = np.array([[big, -big, 0.0], [-big, big, 1.0]], np.float32)
    loss, dlogits = ops.softmax_cross_entropy(logits, np.array([1, 1]), smoothing)
    assert np.isfinite(loss) and np.isfinite(dlogits).all() and dlogits.dtype == np.float32
    # row 0 (wrong by 2 big): 2 (1 - eps) big + eps big; row 1 (right): eps big; mean: big
    assert loss == pytest.approx(float(big), rel=1e-6)
    q = np.array([smoothing / 3, 1 - smoothing + smoothing / 3, smoothing / 3])
    np.testing.assert_allclose(dlogits[1], (np.array([0, 1, 0]) - q) / 2, atol=1e-7)


# --- one stride check for every convolution ------------------------------------------------
def _conv_ops(stride):
    x = np.ones((1, 3, 6, 6), np.float32)
    dw = np.ones((3, 1, 3, 3), np.float32)
    ones, zeros = np.ones(3, np.float32), np.zeros(3, np.float32)
    return {
        "conv2d_forward": lambda: ops.conv2d_forward(x, np.ones((4, 3, 3, 3), np.float32),
                                                     None, stride),
        "depthwise_conv2d_forward": lambda: ops.depthwise_conv2d_forward(x, dw, stride),
        "depthwise_bn_eval_forward": lambda: ops.depthwise_bn_eval_forward(
            x, dw, ones, zeros, zeros, ones, stride=stride),
    }


@pytest.mark.parametrize("stride, message", [
    (1.0, "stride must be the integer 1 or 2"), (True, "stride must be the integer 1 or 2"),
    ("2", "stride must be the integer 1 or 2"), (np.float64(2), "stride must be the integer"),
    (3, "stride must be 1 or 2"), (np.int8(0), "stride must be 1 or 2"),
])
def test_every_convolution_validates_its_stride_alike(stride, message):
    for name, call in _conv_ops(stride).items():
        with pytest.raises(ValueError, match=f"{name}: {message}"):
            call()


def test_numpy_integer_strides_are_accepted_everywhere():
    for name, call in _conv_ops(np.int64(2)).items():
        out, _ = call()
        assert out.shape[2:] == (3, 3), name


# --- the up-front memory estimate ------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(), dict(depth=3.7), dict(phi=2.5), dict(width=0.3, depth=5)])
def test_make_config_counts_the_unrolled_network_without_unrolling_it(kw, monkeypatch):
    """make_config refuses by a parameter count made from two blocks per stage; it must be
    the exact count of the full network (here: refusing at count - 1 bytes, passing at it)."""
    config = make_config("b0", 10, **kw)
    need = memory_estimate(count_parameters(config), training=False)
    monkeypatch.setattr("minieffnet.scaling.physical_memory", lambda: need - 1)
    with pytest.raises(TooLargeError):
        make_config("b0", 10, **kw)
    monkeypatch.setattr("minieffnet.scaling.physical_memory", lambda: need)
    assert make_config("b0", 10, **kw) == config


@pytest.mark.parametrize("kw, message", [
    (dict(depth=1e9), "needs at least"), (dict(width=1e9), "needs at least"),
    (dict(phi=100), "needs at least"), (dict(phi=1e6), "beyond any float"),
    (dict(depth=1e308), "beyond any float"),
])
def test_absurd_sizes_are_refused_up_front(kw, message):
    with pytest.raises(TooLargeError, match=message):
        make_config("b0", 10, **kw)


def test_the_model_builder_refuses_what_cannot_fit():
    # A config as a file may hold it (make_config itself refuses this): 10^9 classes.
    config = dataclasses.replace(make_config("b0", 10, width=0.1, depth=0.1), num_classes=10**9)
    with pytest.raises(TooLargeError, match=r"EfficientNet .* needs at least .* GiB"):
        me.EfficientNet(config)


def test_check_memory_counts_training_copies_and_the_batch():
    params, acts = 1000, 500
    assert memory_estimate(params, training=False) == 4 * params
    assert memory_estimate(params, acts, batch_size=8) == 4 * (4 * params + 8 * acts)
    assert check_memory("net", params, acts, batch_size=8) == 4 * (4 * params + 8 * acts)
    assert physical_memory() > 2**28
    with pytest.raises(TooLargeError, match="batch of 8"):
        check_memory("net", 1, physical_memory(), batch_size=8)


def test_a_layer_call_alone_is_a_transaction_too(rng):
    layer = Linear(3, 2, rng=rng)
    with pytest.raises(ValueError):
        layer(np.ones((2, 4), np.float32))
    with pytest.raises(NoForwardError):
        layer.backward(np.ones((2, 2), np.float32))


# --- the dtypes a model is built in ----------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int32, np.float16, "int64", np.bool_, np.complex64,
                                   "no such dtype"])
def test_the_model_builder_refuses_dtypes_no_op_computes_in(dtype):
    # an int32 model would hold all-zero weights, a float16 one reach no kernel
    with pytest.raises(BadOptionError, match="dtype must be float32 or float64"):
        tiny(dtype=dtype)
    with pytest.raises(BadOptionError, match="dtype must be float32 or float64"):
        tiny().astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float64", np.dtype(np.float32)])
def test_float32_and_float64_models_build_and_run(dtype, rng):
    model = tiny(dtype=dtype)
    assert model.dtype == np.dtype(dtype) == model.classifier.weight.data.dtype
    assert model(batch(rng).astype(dtype)).dtype == np.dtype(dtype)


# --- atomic writes ---------------------------------------------------------------------------
def _curves(path):
    row = {"epoch": 1, "train_loss": 1.0, "test_loss": 1.2, "train_top1": 0.5,
           "test_top1": 0.4, "test_top5": 0.9}
    metrics = path.with_name("metrics.jsonl")
    metrics.write_text(json.dumps(row) + "\n")
    return plot_training_curves(metrics, path)


# writer, the file it replaces, and a temporary name beside it that a fixed-name writer would use
WRITERS = {
    "text": (lambda path: write_text_atomic(path, "new\n"), "config.json", ".config.json.tmp"),
    "npz": (lambda path: save_npz_atomic(path, {"a": np.zeros(2)}, {}), "checkpoint.npz",
            ".checkpoint.npz.tmp"),
    "figure": (_curves, "curves.png", ".curves.png.tmp.png"),
}


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("planted_at", ["temporary", "target"])
def test_atomic_writes_never_follow_a_planted_link(tmp_path, writer, planted_at):
    """A dangling link where the temporary file would go, or at the file itself, must neither
    carry the write outside the folder nor be left as the file."""
    write, name, temporary = WRITERS[writer]
    folder, outside = tmp_path / "run", tmp_path / "outside"
    folder.mkdir()
    link = folder / (temporary if planted_at == "temporary" else name)
    link.symlink_to(outside / "target")
    write(folder / name)
    assert not outside.exists()
    assert (folder / name).is_file() and not (folder / name).is_symlink()
    left = sorted(p.name for p in folder.iterdir() if p.name != "metrics.jsonl")
    assert left == sorted({name, link.name})  # no temporary file left behind


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_text_atomic(tmp_path / "config.json", "old")

    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["config.json"]
