"""Which Zabbix API errors are a busy database (retried) and which are not (dead-lettered)."""

from __future__ import annotations

import pytest

from nbzx.engine.zabbix import is_transient


@pytest.mark.parametrize(
    "text",
    [
        "Application error. Database error occurred.",  # 7.0, two host writes at once (seen in the e2e run)
        'Application error. SQL statement execution has failed "DBEXECUTE_ERROR".',
        "Your database is not working properly. ... row level lock",
        "ERROR: deadlock detected",
    ],
)
def test_a_busy_database_is_transient(text: str) -> None:
    assert is_transient(text)


def test_bad_data_is_not_transient() -> None:
    assert not is_transient('Invalid params. Template "No Such Template 42" does not exist.')
