"""The tests' metric reader: a misspelt metric or label fails the test that reads it."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from nbzx.engine.zabbix import WRITE_METHODS
from tests.metrics import metric_value


def page() -> str:
    reg = CollectorRegistry()
    calls = Counter("nbzx_zabbix_calls_total", "calls", ["method", "result"], registry=reg)
    calls.labels("host.create", "ok").inc(2)
    calls.labels("hostgroup.create", "ok").inc()
    calls.labels("host.create", "error").inc()
    return generate_latest(reg).decode()


def test_sums_the_samples_with_the_labels() -> None:
    assert metric_value(page(), "nbzx_zabbix_calls_total", method="host.create", result="ok") == 2
    assert metric_value(page(), "nbzx_zabbix_calls_total", result="ok") == 3
    assert metric_value(page(), "nbzx_zabbix_calls_total", method="host.delete", result="ok") == 0


def test_a_metric_that_is_not_exposed_is_an_error() -> None:
    with pytest.raises(AssertionError, match="nbzx_zabix_calls_total is not exposed"):
        metric_value(page(), "nbzx_zabix_calls_total", method="host.create")


def test_a_label_the_metric_does_not_have_is_an_error() -> None:
    with pytest.raises(AssertionError, match="has no label"):
        metric_value(page(), "nbzx_zabbix_calls_total", verb="host.create")


def test_the_write_counter_sees_every_write_method() -> None:
    """The e2e write counter sums the client's own list, so a group or maintenance write is counted."""
    assert {"hostgroup.create", "maintenance.create", "host.massadd", "host.massremove"} <= WRITE_METHODS
    total = sum(metric_value(page(), "nbzx_zabbix_calls_total", method=m, result="ok") for m in WRITE_METHODS)
    assert total == 3
