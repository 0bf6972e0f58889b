"""Class activation maps (minieffnet.cam and ``minieffnet cam``): the CAM identity
GAP(M_c) + b_c = logit_c, logits equal to the model's, bilinear upsampling, the figure and the
command line on a tiny trained run.
"""
import dataclasses
import shutil

import matplotlib.image
import numpy as np
import pytest

import minieffnet as me
from minieffnet.cam import class_activation_maps, plot_cams, upsample_cam
from minieffnet.checkpoint import CHECKPOINT_FILE, save_model
from minieffnet.cli import main
from minieffnet.inference import load_trained_model, predict

from test_cli import _no_network
from test_train import TINY, as_cifar10_checkpoint, run, write_cifar10


def tiny(dtype=np.float64, resolution=16):
    """10 classes, 2 x 2 final feature map at 16 px (the cifar preset downsamples by 8)."""
    return me.efficientnet("b0", 10, preset="cifar", width=0.1, depth=0.1,
                           resolution=resolution, dtype=dtype)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """TINY for one epoch: a real run folder with a config, a checkpoint and statistics."""
    return run(tmp_path_factory.mktemp("cam_run"), dataclasses.replace(TINY, epochs=1))


# --- the maps ------------------------------------------------------------------------------------
def test_cam_mean_plus_bias_is_the_logit(rng):
    model = tiny()
    # Non-zero BatchNorm statistics and classifier bias, so neither side of the identity is
    # trivially the other's (fresh BN layers in eval mode and a zero bias would hide a bug).
    for p in model.parameters():
        p.data[...] = p.data + 0.1 * rng.standard_normal(p.data.shape)
    model.train()
    model(rng.standard_normal((8, 3, 16, 16)))  # moves the running statistics
    x = rng.standard_normal((3, 3, 16, 16))
    cams, logits = class_activation_maps(model, x, classes=np.arange(10)[[2, 7, 7]])
    assert model.training  # left in the mode it was in
    assert cams.shape == (3, 2, 2) and cams.dtype == np.float64 and logits.shape == (3, 10)
    bias = model.classifier.bias.data
    np.testing.assert_allclose(cams.mean(axis=(1, 2)) + bias[[2, 7, 7]],
                               logits[np.arange(3), [2, 7, 7]], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(logits, model.eval()(x), rtol=1e-12, atol=1e-12)
    # Every class at once: the maps' means plus the biases are the whole logit vector.
    every = np.stack([class_activation_maps(model, x, classes=c)[0] for c in range(10)], 1)
    np.testing.assert_allclose(every.mean(axis=(2, 3)) + bias, logits, rtol=1e-12, atol=1e-12)


def test_default_class_is_the_prediction_and_float32_works(rng):
    model = tiny(np.float32, resolution=32)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    cams, logits = class_activation_maps(model, x)
    assert cams.shape == (2, 4, 4) and cams.dtype == np.float32
    np.testing.assert_allclose(logits, model.eval()(x), rtol=1e-5, atol=1e-6)
    predicted = logits.argmax(axis=1)
    np.testing.assert_array_equal(cams, class_activation_maps(model, x, predicted)[0])


def test_bad_inputs_are_refused(rng):
    model = tiny()
    x = rng.standard_normal((2, 3, 16, 16))
    for bad, message in ((x.astype(np.float32), "dtype float32 but the model is float64"),
                         (x[:, :1], r"\(N, 3, H, W\)"), (x[0], r"\(N, 3, H, W\)")):
        with pytest.raises(ValueError, match=message):
            class_activation_maps(model, bad)
    for classes in (10, -1, [1, 2, 3], [0.5, 1.0]):
        with pytest.raises(ValueError, match="classes must be"):
            class_activation_maps(model, x, classes)


# --- upsampling ----------------------------------------------------------------------------------
def test_upsample_cam_constant_and_hand_computed():
    np.testing.assert_allclose(upsample_cam(np.full((3, 2), 1.5), (7, 5)), np.full((7, 5), 1.5))
    # align_corners=False: output pixel i samples input (i + 0.5) / 2 - 0.5, clamped to the
    # edge: -0.25 -> 0, 0.25, 0.75, 1.25 -> 1; so a row [a, b] becomes
    # [a, 0.75 a + 0.25 b, 0.25 a + 0.75 b, b], and likewise along the columns.
    cam = np.array([[0.0, 4.0], [8.0, 12.0]])
    row = np.array([1.0, 0.75, 0.25, 0.0])  # weight of the first sample
    weights = np.stack([row, 1 - row], axis=1)  # (4, 2)
    expected = weights @ cam @ weights.T
    np.testing.assert_allclose(expected[0], [0, 1, 3, 4])  # the hand-worked first row
    np.testing.assert_allclose(upsample_cam(cam, 4), expected, atol=1e-12)
    batch = upsample_cam(np.stack([cam, 2 * cam]).astype(np.float32), (4, 4))
    assert batch.shape == (2, 4, 4) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[1], 2 * expected, atol=1e-5)
    assert upsample_cam(np.ones((2, 2), np.int64), 3).dtype == np.float64
    with pytest.raises(ValueError, match=r"\(h, w\) or \(N, h, w\)"):
        upsample_cam(np.ones(4), 4)


def test_plot_cams_writes_a_grid(tmp_path):
    images = [np.zeros((32, 32, 3), np.uint8), np.full((20, 24, 3), 128, np.uint8)]
    cams = [[np.eye(2), np.ones((4, 4))], [np.eye(2), np.arange(4.0).reshape(2, 2)]]
    titles = [["a\n1", "b\n2"], ["a\n3", "b\n4"]]
    out = plot_cams(images, cams, titles, tmp_path / "grid.png", image_titles=["x", "y"])
    assert matplotlib.image.imread(out).shape[:2] == (2 * 230, 3 * 220)  # 2 rows, 1 + 2 columns
    with pytest.raises(ValueError, match="need 2 rows"):
        plot_cams(images, cams[:1], titles, tmp_path / "bad.png")


# --- command line --------------------------------------------------------------------------------
def test_cli_cam_test_images_and_files(trained_run, tmp_path, capsys):
    folder = trained_run.run_dir
    # The same run twice, once as a folder and once as its checkpoint file: two columns.
    out = tmp_path / "cam.png"
    assert main(["cam", str(folder), str(folder / CHECKPOINT_FILE), "--test-images", "4",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"figure: {out}" in text and out.is_file()
    assert matplotlib.image.imread(out).shape[:2] == (4 * 230, 3 * 220)
    lines = text.splitlines()
    shown = [line for line in lines if line.startswith(f"  {folder.name} (16 px): ")]
    assert len(shown) == 8  # 4 images x 2 columns, both named after the run folder
    assert shown[0::2] == shown[1::2]  # the same model twice: the same predictions

    # Image files: the printed prediction is predict's.
    image = trained_run.test_set.images[0]
    png = tmp_path / "img.png"
    matplotlib.image.imsave(png, image)
    assert main(["cam", str(folder), "--images", str(png), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    trained = load_trained_model(folder)
    probs = predict(trained, [image])[0]
    c = probs.argmax()
    assert f"{png}:\n  {folder.name} (16 px): {trained.class_names[c]} {100 * probs[c]:.1f} %" \
        in text


def test_cli_cam_test_images_never_come_from_the_checkpoints_data_dir(trained_run, tmp_path,
                                                                      monkeypatch, capsys):
    """--test-images reads the data set from $MINIEFFNET_DATA (or the user cache), never from
    (or downloaded into) the folder the checkpoint names."""
    run_dir = shutil.copytree(trained_run.run_dir, tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    as_cifar10_checkpoint(run_dir, elsewhere)
    monkeypatch.setenv("MINIEFFNET_DATA", str(write_cifar10(tmp_path / "mine")))
    monkeypatch.setattr("urllib.request.urlopen", _no_network)
    out = tmp_path / "cam.png"
    assert main(["cam", str(run_dir), "--test-images", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"note: not reading the checkpoint's data_dir ({elsewhere})" in text
    assert "cifar10-test image 1 (true: airplane):" in text and out.is_file()
    assert not elsewhere.exists()


def test_cli_cam_errors(trained_run, tmp_path, capsys):
    folder = str(trained_run.run_dir)
    bare = save_model(tmp_path / "model.npz", trained_run.model)
    cases = [
        (["cam", folder], "no images: pass --images"),
        (["cam", folder, "--images", str(tmp_path / "missing.png")], "cannot read the image"),
        (["cam", folder, "--test-images", "0"], "--test-images must be at least 1"),
        (["cam", str(bare), "--test-images", "2"], "without a training config"),
        (["cam", str(tmp_path / "nowhere"), "--test-images", "2"], "nowhere"),
    ]
    for argv, message in cases:
        assert main([*argv, "--out", str(tmp_path / "cam.png")]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("minieffnet cam: error: ") and message in err, err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "cam.png").exists()
