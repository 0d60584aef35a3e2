"""Run the schemathesis CLI against a server of ours and its published OpenAPI description."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


async def schemathesis_run(spec: Path, port: int, token: str, *extra: str) -> str:
    """Every check on generated requests (plus `extra` options); fails the test with the report."""
    schemathesis = Path(sys.executable).parent / "schemathesis"
    proc = await asyncio.create_subprocess_exec(
        str(schemathesis), "run", str(spec),
        "--url", f"http://127.0.0.1:{port}",
        "-H", f"Authorization: Bearer {token}",
        "--checks", "all", "--seed", "1", "--no-color", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    report = out.decode()
    assert proc.returncode == 0, report[-6000:]
    assert "passed" in report
    return report
