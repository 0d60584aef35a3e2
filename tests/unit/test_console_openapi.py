"""The console's JSON API against its published description (docs/console-api.yaml), by schemathesis:
no 5xx, documented status codes and bodies, invalid input refused, on generated requests."""

from __future__ import annotations

from aiohttp import web

from nbzx.common.config import parse_config
from nbzx.console.app import make_app
from nbzx.console.state import ConsoleState
from nbzx.schemas.messages import HostStatus, JobRecord, encode
from tests.conftest import ROOT
from tests.schemathesis_cli import schemathesis_run
from tests.unit.test_receiver_app import RecordingProducer

CFG = parse_config("{}", {"NBZX_CONSOLE_OPERATOR_TOKENS": "alice:op-tok"})


class _Rec:
    def __init__(self, msg: JobRecord | HostStatus) -> None:
        self.value, self.partition, self.offset = encode(msg), 0, 0


async def test_the_console_api_keeps_its_openapi_description() -> None:
    state = ConsoleState(CFG, follow=False)
    state.apply_jobs([_Rec(JobRecord(job_id="j1", job_kind="reconcile", status="failed", error="x"))])
    state.apply_statuses([_Rec(HostStatus(host_key="dcim.device:12", host="sw1", result="failed"))])
    runner = web.AppRunner(make_app(CFG, RecordingProducer(), None, state))  # type: ignore[arg-type]
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await schemathesis_run(
            ROOT / "docs" / "console-api.yaml", port, "op-tok",
            # Every check but "valid-looking data is accepted": some refusals no schema can state
            # (a time already past, a host key with no dead letter) and are tested in test_console_app.
            "--exclude-checks", "positive_data_acceptance",
            # The Difference route needs NetBox and Zabbix: tests/e2e/test_console_browser.py checks it.
            "--exclude-path", "/api/v1/hosts/{key}/difference",
            # And the route: tests/e2e/test_servers.py reads it from both real servers.
            "--exclude-path", "/api/v1/hosts/{key}/route",
            # So does the adoption plan: tests/e2e/test_console_browser.py reads it from a real stack.
            "--exclude-name", "GET /api/v1/adoption",
            "--max-examples", "25",
        )  # fmt: skip
    finally:
        await runner.cleanup()
