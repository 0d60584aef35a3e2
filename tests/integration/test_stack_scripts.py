"""The stack's own scripts, as a fresh machine runs them: install before configure, and no failure
that ends a script without saying where and why (scripts/lib/fail.sh)."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.pipeline import free_port

SCRIPTS = ROOT / "scripts"
SERVICES = ("postgres", "kafka", "zabbix", "zabbix7", "redis", "netbox", "tls", "kafka3", "k8s")


def _kafka_env(tmp_path: Path) -> dict[str, str]:
    """A Kafka of its own: empty cache and state under tmp_path, ports nothing else uses."""
    return {
        **os.environ,
        "NBZX_CACHE_HOME": str(tmp_path / "cache"),
        "NBZX_STATE_HOME": str(tmp_path / "state"),
        "NBZX_KAFKA_PORT": str(free_port()),
        "NBZX_KAFKA_CONTROLLER_PORT": str(free_port()),
        "NBZX_KAFKA_PODS_PORT": str(free_port()),
    }


def _stack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPTS / "stack"), *args], env=env, capture_output=True, text=True, timeout=300)


def test_kafka_from_an_empty_cache_is_installed_before_it_is_configured(tmp_path: Path) -> None:
    """A fresh machine's first `scripts/stack up`: no jars yet (Maven's own repository may be warm)."""
    env = _kafka_env(tmp_path)
    try:
        up = _stack(env, "up", "kafka")
        assert up.returncode == 0, up.stderr[-3000:]
        assert "kafka: resolving Apache Kafka" in up.stderr, "the jars were fetched into the empty cache"
        assert re.search(r"kafka +up", _stack(env, "status").stdout)
    finally:
        _stack(env, "down", "kafka")


def test_a_failing_step_names_itself_its_command_and_line_and_shows_its_log(tmp_path: Path) -> None:
    """The failure a newcomer met: Kafka's StorageTool failing inside a command substitution under
    `set -e` ended `scripts/stack` with status 1 and not a word."""
    env = _kafka_env(tmp_path)
    version = re.search(r"<kafka.version>(.*)</kafka.version>", (SCRIPTS / "kafka" / "pom.xml").read_text())
    assert version is not None
    jars = tmp_path / "cache" / "kafka" / f"libs-{version.group(1)}"
    jars.mkdir(parents=True)
    (jars / f"kafka_2.13-{version.group(1)}.jar").write_bytes(b"")  # "cached", yet holds no class
    try:
        up = _stack(env, "up", "kafka")
    finally:
        _stack(env, "down", "kafka")
    assert up.returncode != 0
    err = up.stderr
    assert "[stack] FAILED (exit status" in err, err
    assert "step:    kafka: formatting KRaft storage" in err, err
    assert re.search(r"command: cid=\$\(java .*StorageTool random-uuid", err), err
    assert re.search(r"where:   .*scripts/lib/kafka\.sh:\d+", err), err
    assert re.search(r"log:     .*kafka-format\.log", err) and "kafka.tools.StorageTool" in err, err


def _entry_points() -> list[Path]:
    found = [
        p for p in SCRIPTS.rglob("*") if p.is_file() and p.read_text(errors="replace").startswith("#!/usr/bin/env bash")
    ]
    return sorted([*found, ROOT / ".ci" / "run"])


@pytest.mark.parametrize("script", _entry_points(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_script_reports_its_failures(script: Path) -> None:
    """Each bash entry point sources fail.sh, directly or through common.sh, before it runs anything,
    or only `exec`s one that does."""
    text = script.read_text()
    body = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    sources = re.compile(r'^\.\s+.*(lib/fail\.sh|lib/common\.sh)"?$')
    first = body[0] if body else ""
    if script.name == "run" and script.parent.name == ".ci":
        assert any(re.match(r"exec scripts/\w+", ln) for ln in body), ".ci/run only execs a script that does"
        return
    # `cd` to the repository (or SCRIPTS_DIR=...) may come first; the handler right after.
    head = [ln for ln in body[:3] if not ln.startswith(("cd ", "SCRIPTS_DIR="))]
    assert head and sources.match(head[0].strip()), f"{script}: first command is {first!r}, not sourcing fail.sh"


def _functions(text: str) -> dict[str, list[str]]:
    """name -> body lines of every top-level function `name() {` ... `}` in a bash file."""
    out: dict[str, list[str]] = {}
    name = None
    for line in text.splitlines():
        m = re.match(r"^(\w+)\(\) \{\s*$", line)
        if m:
            name = m.group(1)
            out[name] = []
        elif line == "}":
            name = None
        elif name:
            out[name].append(line)
    return out


@pytest.mark.parametrize("lib", sorted((SCRIPTS / "lib").glob("*.sh")), ids=lambda p: p.name)
def test_each_services_up_installs_before_it_configures_or_starts(lib: Path) -> None:
    """In every service's `X_up` (scripts/stack's services, redis, the cluster), installing (`X_install`
    or `apt_install`) comes before any configure, database load or start."""
    for name, body in _functions(lib.read_text()).items():
        service = name.removesuffix("_up")
        if service not in SERVICES or not name.endswith("_up"):
            continue
        installs = [i for i, ln in enumerate(body) if re.search(rf"\b({service}_install|apt_install)\b", ln)]
        later = [
            i for i, ln in enumerate(body)
            if re.search(rf"\b{service}_(configure|load_db|db)\b|\bstart_bg\b|\b{service}_processes_up\b", ln)
        ]  # fmt: skip
        if installs and later:
            assert installs[0] < later[0], f"{lib.name}: {name} configures or starts before {service}_install"
        elif later:
            pytest.fail(f"{lib.name}: {name} configures or starts {service} and never calls {service}_install")


def test_the_image_is_rebuilt_when_anything_the_dockerfile_copies_changes(tmp_path: Path) -> None:
    # The stamp once named the package folders by hand; after they moved under nbzx/ it failed on
    # folders that no longer exist, and stopped the whole test command before the image was built.
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    for folder in ("nbzx", "scripts"):
        subprocess.run(["cp", "-r", str(ROOT / folder), str(tmp_path / folder)], check=True)

    def stamp() -> str:
        run = subprocess.run(
            ["bash", str(tmp_path / "scripts/image"), "--stamp"], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stderr
        assert re.fullmatch(r"[0-9a-f]{16}\n", run.stdout), run.stdout
        return run.stdout

    first = stamp()
    assert stamp() == first, "the same sources give the same stamp"
    model = tmp_path / "nbzx/core/model.py"
    model.write_text(model.read_text() + "\n# changed\n")
    assert stamp() != first, "a change in a copied package is a new image"


def test_the_wheel_the_image_installs_carries_the_package_data(tmp_path: Path) -> None:
    # Built from what the Dockerfile copies only (no egg-info left from an editable install, which once
    # hid that the console's templates were declared under the package's old name).
    for name in ("pyproject.toml", "README.md"):
        (tmp_path / "src" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "src" / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(["cp", "-r", str(ROOT / "nbzx"), str(tmp_path / "src/nbzx")], check=True)
    run = subprocess.run(
        [os.fspath(Path(sys.executable)), "-m", "pip", "wheel", "-q", "--no-deps",
         "-w", str(tmp_path / "dist"), str(tmp_path / "src")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    [wheel] = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = [p.relative_to(ROOT).as_posix() for p in (ROOT / "nbzx").rglob("*") if p.is_file()]
    wanted = [n for n in wanted if "__pycache__" not in n]
    assert [n for n in wanted if n not in names] == []


def _psql(*args: str) -> str:
    cmd = ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", *args]
    return subprocess.run(cmd, cwd="/", capture_output=True, text=True, check=True).stdout


def _tables(db: str) -> set[str]:
    return set(_psql("-d", db, "-c", "select tablename from pg_tables where schemaname='public'").split())


def test_a_database_left_from_before_a_wipe_is_loaded_again(tmp_path: Path) -> None:
    """CI's machine came back with PostgreSQL down, so `wipe` could not drop the databases, and the
    next `up` took the old Zabbix 7.0 one (its changelog sequence behind its rows after a crash
    recovery) for a fresh one: host.create failed on a duplicate key. A database counts as the
    stack's only while the state marks it."""
    sql = tmp_path / "sql"
    sql.mkdir()
    for name, text in (("schema", "CREATE TABLE fresh (id int);\n"), ("images", ""), ("data", "")):
        (sql / f"{name}.sql.gz").write_bytes(gzip.compress(text.encode()))
    db = f"nbzx_probe_{os.getpid()}"
    env = {**os.environ, "NBZX_CACHE_HOME": str(tmp_path / "cache"), "NBZX_STATE_HOME": str(tmp_path / "state")}
    libs = ". scripts/lib/common.sh && . scripts/lib/postgres.sh && . scripts/lib/zabbix.sh"
    load = f'{libs} && zabbix_load_db {db} "{sql}"'
    try:
        # From before a wipe: the database and its pristine copy exist, the (emptied) state knows neither.
        _psql("-c", f"CREATE DATABASE {db}")
        _psql("-d", db, "-c", "CREATE TABLE stale (id int)")
        _psql("-c", f"CREATE DATABASE {db}_pristine TEMPLATE {db}")
        run = subprocess.run(["bash", "-c", load], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-3000:]
        assert _tables(db) == {"fresh"} and _tables(f"{db}_pristine") == {"fresh"}, "the old database was reused"
        # Loaded under this state: a tier's `up` keeps it as it is.
        _psql("-d", db, "-c", "CREATE TABLE kept (id int)")
        run = subprocess.run(["bash", "-c", load], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-3000:]
        assert _tables(db) == {"fresh", "kept"}
    finally:
        for name in (db, f"{db}_pristine"):
            _psql("-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_pid_left_in_the_state_from_before_a_restart_is_not_stopped(tmp_path: Path) -> None:
    """After a machine restart the state still names the PIDs the stack had; the kernel hands those
    numbers to other processes. `down` and `wipe` must end only what the stack started: a recorded
    PID counts as ours only while its process is the one that was recorded."""
    env = {**os.environ, "NBZX_CACHE_HOME": str(tmp_path / "cache"), "NBZX_STATE_HOME": str(tmp_path / "state")}
    (tmp_path / "state").mkdir()
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    ours = subprocess.run(
        ["bash", "-c", ". scripts/lib/common.sh && start_bg kafka 0 /dev/null sleep 300 && state_pid kafka"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ours.returncode == 0, ours.stderr
    our_pid = int(ours.stdout.strip())
    try:
        state = tmp_path / "state" / "stack.state"
        # redis's line, written before the restart (its process started at tick 1 of that boot): the
        # number now belongs to another process.
        state.write_text(state.read_text() + f"redis {stranger.pid} 6379 1\n")
        run = _stack(env, "down", "kafka", "netbox")
        assert run.returncode == 0, run.stderr[-3000:]
        assert stranger.poll() is None, "a process the stack did not start was stopped"
        assert "redis" not in state.read_text(), "the stale line stays in the state"
        for _ in range(50):
            if not Path(f"/proc/{our_pid}").exists():
                break
            time.sleep(0.1)
        assert not Path(f"/proc/{our_pid}").exists(), "the stack's own process was not stopped"
    finally:
        stranger.kill()
        stranger.wait()
        subprocess.run(["kill", "-KILL", str(our_pid)], capture_output=True)
