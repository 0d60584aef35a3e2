"""Logs are JSON lines with bound context, and secrets never reach them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from nbzx.common.logging import get_logger, setup_logging


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()  # the configured sink was this test's captured stderr


def test_module_level_logger_is_json_after_setup_and_redacts(capsys: pytest.CaptureFixture[str]) -> None:
    log = get_logger(component="t")  # created before set-up, like a module-level logger
    setup_logging("info", json=True)
    log.info("sync", host_key="dcim.device:1", offset=7, webhook_secret="hook-secret-123", api_token="x")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "sync" and line["component"] == "t" and line["host_key"] == "dcim.device:1"
    assert line["offset"] == 7 and line["webhook_secret"] == "***" and line["api_token"] == "***"
    assert "hook-secret-123" not in json.dumps(line)
