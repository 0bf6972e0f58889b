"""The figure helpers every plot goes through (minieffnet.viz.figure / save)."""
import pytest

from minieffnet.viz import figure, save

PNG = b"\x89PNG\r\n\x1a\n"


def test_save_replaces_the_file_and_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "plot.png"
    out.write_bytes(b"old")
    fig = figure((2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    assert save(fig, out) == out
    assert out.read_bytes()[:8] == PNG
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_save_takes_the_format_from_the_suffix_and_png_without_one(tmp_path):
    fig = figure((2, 2))
    assert save(fig, tmp_path / "plot.pdf").read_bytes()[:5] == b"%PDF-"
    assert save(fig, tmp_path / "plot").read_bytes()[:8] == PNG


def test_a_failed_save_keeps_the_old_file_and_removes_the_temporary_one(tmp_path):
    out = tmp_path / "plot.nosuchformat"
    out.write_bytes(b"old")
    with pytest.raises(ValueError, match="nosuchformat"):
        save(figure((2, 2)), out)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.nosuchformat"]
