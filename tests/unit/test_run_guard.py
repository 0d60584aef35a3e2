"""The run guard (tests/run_guard.py) on small suites of its own, run by pytest's pytester."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]

PASSING = "def test_ok() -> None:\n    assert True\n"


def lay_out(pytester: pytest.Pytester, files: dict[str, str]) -> None:
    """A suite with one passing test per tier folder, plus `files`; the guard imported from this repo."""
    pytester.makeini("[pytest]\ntestpaths = tests\n")
    for tier in ("unit", "integration", "e2e", "k8s"):
        pytester.path.joinpath("tests", tier).mkdir(parents=True)
        pytester.path.joinpath(f"tests/{tier}/test_{tier}_ok.py").write_text(PASSING)
    for name, text in files.items():
        pytester.path.joinpath(name).write_text(text)


@pytest.fixture(autouse=True)
def _guard_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "tests.run_guard", *args)


def test_a_clean_suite_passes(pytester: pytest.Pytester) -> None:
    lay_out(pytester, {})
    result = run(pytester)
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize(
    "body",
    [
        "import pytest\n\n@pytest.mark.skip(reason='no service')\ndef test_s() -> None:\n    pass\n",
        "import pytest\n\ndef test_s() -> None:\n    pytest.skip('no service')\n",
        "import pytest\n\n@pytest.mark.xfail(reason='later')\ndef test_s() -> None:\n    assert False\n",
    ],
    ids=["skip-mark", "skip-call", "xfail"],
)
def test_a_test_that_did_not_run_fails_the_run(pytester: pytest.Pytester, body: str) -> None:
    lay_out(pytester, {"tests/e2e/test_not_run.py": body})
    result = run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*run_guard: 1 test(s) did not run as written*", "*test_not_run.py::test_s*"])


def test_a_file_pytest_would_not_collect_is_an_error(pytester: pytest.Pytester) -> None:
    lay_out(pytester, {"tests/unit/check_things.py": PASSING})
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*tests/unit/check_things.py defines tests but pytest does not collect it*"])


def test_a_test_outside_the_tiers_is_an_error(pytester: pytest.Pytester) -> None:
    lay_out(pytester, {"tests/test_loose.py": PASSING})
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*tests/test_loose.py::test_ok is outside the tier folders*"])


def test_a_tier_that_collects_nothing_is_an_error(pytester: pytest.Pytester) -> None:
    lay_out(pytester, {"tests/k8s/test_k8s_ok.py": "# emptied by mistake\n"})
    result = run(pytester, "-m", "k8s")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*tier k8s collected no test*"])


def test_the_hypothesis_seed_is_printed_and_used(pytester: pytest.Pytester) -> None:
    lay_out(
        pytester,
        {
            "tests/unit/test_seed.py": "def test_seed() -> None:\n    from hypothesis import core\n"
            "    assert core.global_force_seed == 1234\n"
        },
    )
    result = run(pytester, "--hypothesis-seed=1234")
    result.stdout.fnmatch_lines(["hypothesis seed: 1234 (replay a failure with --hypothesis-seed=1234)"])
    result.assert_outcomes(passed=5)


def test_a_run_narrowed_on_purpose_with_k_is_not_an_error(pytester: pytest.Pytester) -> None:
    lay_out(pytester, {})
    result = run(pytester, "-k", "unit")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK


def test_a_run_without_the_cache_plugin_is_guarded_too(pytester: pytest.Pytester) -> None:
    # `-p no:cacheprovider` (a read-only checkout) removes --lf; the guard once crashed asking for it.
    lay_out(pytester, {})
    result = run(pytester, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.OK
