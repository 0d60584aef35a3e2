"""The Zabbix client against the stack's real Zabbix: session expiry under concurrent calls."""

from __future__ import annotations

import asyncio
import json
import urllib.request

from consumer.zabbix import Zabbix
from tests.conftest import ZABBIX_URL, ensure_stack, make_config


def _kill_session(session_id: str) -> None:
    """End a session server-side, as a Zabbix restart, a DB reset or an admin would."""
    body = json.dumps({"jsonrpc": "2.0", "method": "user.logout", "params": [], "auth": session_id, "id": 1})
    req = urllib.request.Request(
        f"{ZABBIX_URL}/api_jsonrpc.php", data=body.encode(), headers={"Content-Type": "application/json-rpc"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.load(resp).get("result") is True


async def test_concurrent_calls_on_an_expired_session_log_in_once_and_all_succeed() -> None:
    ensure_stack("zabbix")
    zabbix = Zabbix(make_config())
    await zabbix.start()
    try:
        logins = zabbix._logins
        stale = zabbix._api._AsyncZabbixAPI__session_id
        await asyncio.to_thread(_kill_session, stale)

        results = await asyncio.gather(
            *(zabbix.call("hostgroup.get", {"output": ["name"], "limit": 1}) for _ in range(8))
        )

        assert all(isinstance(r, list) and r for r in results), results
        assert zabbix._api._AsyncZabbixAPI__session_id != stale, "a new session replaced the dead one"
        assert zabbix._logins == logins + 1, "eight callers on one dead session log in once"
    finally:
        await zabbix.close()
