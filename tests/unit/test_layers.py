"""The layers contract (pyproject.toml [tool.importlinter], run by the test command) holds, and it is
not a contract that cannot fail: an import that runs back up, or a circle, breaks it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"


def _lint(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--no-cache", "--config", str(where / "pyproject.toml")],
        cwd=where,
        env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the package and its contract, to break on purpose."""
    shutil.copytree(ROOT / "nbzx", tmp_path / "nbzx", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_both_contracts(tree: Path) -> None:
    run = _lint(tree)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Contracts: 2 kept, 0 broken." in run.stdout


def _broken(tree: Path, module: str, line: str) -> str:
    """lint-imports' report on the tree with `line` added to `module` (a path under the tree); it must fail."""
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    run = _lint(tree)
    assert run.returncode == 1, run.stdout + run.stderr
    return run.stdout


def test_an_import_back_up_breaks_the_layers(tree: Path) -> None:
    report = _broken(tree, "nbzx/core/model.py", "from nbzx.engine import sync as _up")
    assert "nbzx.core is not allowed to import nbzx.engine" in report
    assert "nbzx.core.model -> nbzx.engine.sync" in report


def test_one_process_importing_another_breaks_the_layers(tree: Path) -> None:
    report = _broken(tree, "nbzx/receiver/app.py", "from nbzx.console import views as _sideways")
    assert "nbzx.receiver is not allowed to import nbzx.console" in report


def test_a_circle_between_siblings_breaks_the_contract(tree: Path) -> None:
    # console.context is below console.app; importing the app back makes a circle.
    report = _broken(tree, "nbzx/console/context.py", "from nbzx.console import app as _circle")
    assert "No cycles are allowed in nbzx.console" in report
