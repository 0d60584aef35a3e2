"""The receiver against its published OpenAPI description (docs/openapi.yaml), by schemathesis: every
check (no 5xx, documented status codes and bodies, invalid input refused) on generated requests."""

from __future__ import annotations

from tests.conftest import ROOT
from tests.schemathesis_cli import schemathesis_run
from tests.unit.test_receiver_fuzz import Server


async def test_the_receiver_keeps_its_openapi_description() -> None:
    server = Server()
    await server.start()
    try:
        await schemathesis_run(ROOT / "docs" / "openapi.yaml", server.port, "test-api-token", "--max-examples", "30")
    finally:
        await server.runner.cleanup()
