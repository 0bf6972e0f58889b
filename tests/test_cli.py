"""The command line: ``info`` reproduces the paper's Table 1; ``check-ops`` passes."""
import re

from minieffnet.cli import main

# Paper Table 1: (stage, resolution, channels, layers) for EfficientNet-B0 at 224.
TABLE_1 = [(1, 224, 32, 1), (2, 112, 16, 1), (3, 112, 24, 2), (4, 56, 40, 2), (5, 28, 80, 3),
           (6, 14, 112, 3), (7, 14, 192, 4), (8, 7, 320, 1), (9, 7, 1280, 1)]


def test_info_b0_matches_paper_table_1(capsys):
    assert main(["info", "b0"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\s+(\d)\s+\S.*?\s(\d+)x\d+\s+(\d+)\s+(\d+)\s", out, re.M)
    assert [tuple(map(int, r)) for r in rows] == TABLE_1
    assert "parameters: 5,288,548" in out and "0.386 B" in out


def test_info_rejects_unknown_variant(capsys):
    assert main(["info", "b9"]) == 2
    assert "unknown variant 'b9'" in capsys.readouterr().err


def test_check_ops_passes(capsys):
    assert main(["check-ops"]) == 0
    out = capsys.readouterr().out
    assert "all below 1e-06" in out and " NO" not in out
