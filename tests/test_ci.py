"""The README's promise to a new user: its test command is what CI runs, verbatim, before the
optional PyTorch leg."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The commands of the README's first code block (its two numbered commands)."""
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"),
                      re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_ci_runs_the_readme_test_command_verbatim_before_installing_pytorch():
    install_and_run, test = readme_commands()
    assert "minieffnet train" in install_and_run and "pytest" in test
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test in ci, "the README's test command is not a line of .ci/run"
    first_torch = next(i for i, line in enumerate(ci) if ".[test,torch]" in line)
    assert ci.index(test) < first_torch, "CI installs PyTorch before the README's command"
    assert "torch" not in test
    assert any("pytest" in line and "-m torch" in line for line in ci[first_torch:])
