"""A run that did not run what it was meant to is a failed run (pytest plugin, loaded by conftest).

- Every test lives in a tier folder (tests/unit, integration, e2e, k8s) and gets its marker from it.
- A test module that defines tests yields at least one item; a file in a tier folder that defines
  tests but is not named `test_*.py` (so pytest never collects it) is an error.
- A whole run (no `-m`, no paths) collects every tier and a `-m TIER` run that tier, each module of
  it at least once (unless narrowed on purpose with `-k`, `--deselect` or `--lf`).
- A skipped, xfailed or xpassed test fails the run: a missing service is an error, never a skip.
- Property-based tests run with a seed printed in the header, so a failure can be replayed with
  `--hypothesis-seed=N`.
"""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

TIERS = ("unit", "integration", "e2e", "k8s")


def tests_dir(config: pytest.Config) -> Path:
    """The suite's folder: `tests` under the rootdir."""
    return (config.rootpath / "tests").resolve()


def tier_of(tests: Path, path: Path) -> str | None:
    """The tier folder a test file sits in, or None outside them."""
    try:
        rel = path.resolve().relative_to(tests)
    except ValueError:
        return None
    return rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] in TIERS else None


def defines_tests(source: str) -> bool:
    """Whether a module's source defines a test function or a Test class at its top level."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            return True
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            return True
    return False


def uncollectable_files(tests: Path) -> list[str]:
    """Files in a tier folder that define tests under a name pytest does not collect."""
    return sorted(
        str(f.relative_to(tests.parent))
        for tier in TIERS
        for f in (tests / tier).glob("*.py")
        if not f.name.startswith("test_") and f.name != "__init__.py" and defines_tests(f.read_text())
    )


def collection_problems(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """What is wrong with what this run collected (empty when nothing is)."""
    tests = tests_dir(config)
    unnamed = uncollectable_files(tests)
    problems = [f"{f} defines tests but pytest does not collect it (name it test_*.py)" for f in unnamed]
    per_module: dict[Path, int] = {}
    per_tier = dict.fromkeys(TIERS, 0)
    for item in items:
        path = Path(str(item.path))
        tier = tier_of(tests, path)
        if tier is None:
            problems.append(f"{item.nodeid} is outside the tier folders ({', '.join(TIERS)}): no tier runs it")
            continue
        per_tier[tier] += 1
        per_module[path] = per_module.get(path, 0) + 1
    whole = not config.args or all(Path(a).resolve() == tests for a in config.args)
    narrowed = config.getoption("keyword") or config.getoption("deselect") or config.getoption("lf", default=False)
    if whole and not narrowed:  # a run of whole tiers: each tier, and each of its modules, ran something
        wanted = config.getoption("markexpr") or ""
        expected = [t for t in TIERS if not wanted or wanted == t]
        problems += [f"tier {t} collected no test" for t in expected if per_tier[t] == 0]
        for tier in expected:
            for module in sorted((tests / tier).glob("test_*.py")):
                if per_module.get(module.resolve(), 0) == 0 and defines_tests(module.read_text()):
                    problems.append(f"{module.relative_to(tests.parent)} collected no test")
    return problems


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Choose the hypothesis seed for the run when none was given, so it can be printed and replayed."""
    if config.getoption("hypothesis_seed", default=None) is None and hasattr(config.option, "hypothesis_seed"):
        config.option.hypothesis_seed = random.randrange(2**32)


def pytest_report_header(config: pytest.Config) -> str:
    """The seed of this run's property-based tests."""
    seed = config.getoption("hypothesis_seed", default=None)
    return f"hypothesis seed: {seed} (replay a failure with --hypothesis-seed={seed})"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fail the run before any test starts when what was collected is short of what exists."""
    problems = collection_problems(config, items)
    if problems:
        raise pytest.UsageError("the run would miss tests:\n  " + "\n  ".join(problems))


def not_run(config: pytest.Config) -> list[str]:
    """The tests of this run that were skipped, xfailed or xpassed."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter is not None else {}
    return [r.nodeid for key in ("skipped", "xfailed", "xpassed") for r in stats.get(key, [])]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A test that was skipped or xfailed (or xpassed) turns a green run red."""
    if not_run(session.config) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Say why a run whose tests all passed failed."""
    missed = not_run(config)
    if missed:
        terminalreporter.write_sep("=", f"run_guard: {len(missed)} test(s) did not run as written", red=True)
        for nodeid in missed:
            terminalreporter.write_line(f"  {nodeid}")
