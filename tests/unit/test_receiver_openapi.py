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
        await schemathesis_run(
            ROOT / "docs" / "openapi.yaml", server.port, "test-api-token", "--max-examples", "30",
            # Every check but "valid-looking data is accepted": a reconcile's `servers` must name servers
            # the config has, which no schema can state (test_receiver_app checks that refusal).
            "--exclude-checks", "positive_data_acceptance",
        )  # fmt: skip
    finally:
        await server.runner.cleanup()
