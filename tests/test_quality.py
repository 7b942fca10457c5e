"""The code stays `ruff` clean, `ruff format`ted and `mypy --strict` clean: the test command checks it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.processes import ROOT


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "gateway", "tests"], ["ruff", "format", "--check", "gateway", "tests"], ["mypy"]],
    ids=["ruff", "ruff-format", "mypy"],
)
def test_tool_is_clean(command: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
