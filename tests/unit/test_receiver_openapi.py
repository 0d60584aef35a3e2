"""The receiver against its published OpenAPI description (docs/openapi.yaml), by schemathesis: every
check (no 5xx, documented status codes and bodies, invalid input refused) on generated requests."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.unit.test_receiver_fuzz import Server


async def test_the_receiver_keeps_its_openapi_description() -> None:
    server = Server()
    await server.start()
    try:
        schemathesis = Path(sys.executable).parent / "schemathesis"
        proc = await asyncio.create_subprocess_exec(
            str(schemathesis), "run", str(ROOT / "docs" / "openapi.yaml"),
            "--url", f"http://127.0.0.1:{server.port}",
            "-H", "Authorization: Bearer test-api-token",
            "--checks", "all", "--max-examples", "30", "--seed", "1", "--no-color",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()[-4000:]
        assert "passed" in out.decode()
    finally:
        await server.runner.cleanup()
