"""A small Zabbix JSON-RPC stub for the versions no package here has (7.4, 8.0, a future 9.0, an old 5.4).

Stub, not Zabbix: it answers only what the client needs to connect, read its settings and write
hosts, and it reproduces the documented and observed differences the capability table is about:
7.2+ refuses the JSON `auth` field, 8.0 has no `host.massupdate`. Everything else is tested
against the real 6.0 and 7.0 servers of the stack.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from nbzx.core.zabbix_versions import parse_version

SESSION = "0424bd59b807674191e7d77572075f33"


class ZabbixStub:
    """One stub server: `version` is what apiinfo.version answers; `calls` records (method, transport)."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.key = parse_version(version)
        self.calls: list[tuple[str, str]] = []
        self.hosts: dict[str, dict[str, Any]] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api_jsonrpc.php", self._handle)
        return app

    def methods(self) -> list[str]:
        return [m for m, _ in self.calls]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        method, params, rid = body["method"], body.get("params"), body.get("id")
        transport = "header" if request.headers.get("Authorization") else "auth_field" if "auth" in body else "none"
        self.calls.append((method, transport))

        def error(code: int, message: str, data: str) -> web.Response:
            doc = {"jsonrpc": "2.0", "error": {"code": code, "message": message, "data": data}, "id": rid}
            return web.json_response(doc)

        def ok(result: Any) -> web.Response:
            return web.json_response({"jsonrpc": "2.0", "result": result, "id": rid})

        if method == "apiinfo.version":
            return ok(self.version)
        if "auth" in body and self.key >= (7, 2):
            return error(-32602, "Invalid params.", 'Invalid parameter "/": unexpected parameter "auth".')
        if method == "user.login":
            if "username" not in params:
                return error(-32602, "Invalid params.", 'Invalid parameter "/": unexpected parameter "user".')
            return ok(SESSION)
        if transport == "none":
            return error(-32602, "Invalid params.", "Not authorised.")
        if method == "user.logout":
            return ok(True)
        if method in ("template.get", "hostgroup.get", "proxy.get", "proxygroup.get", "maintenance.get"):
            return ok([])
        if method == "host.get":
            return ok(list(self.hosts.values()))
        if method == "host.update":
            for row in params if isinstance(params, list) else [params]:
                self.hosts.setdefault(row["hostid"], {"hostid": row["hostid"]}).update(row)
            return ok({"hostids": [r["hostid"] for r in (params if isinstance(params, list) else [params])]})
        if method == "host.massupdate" and self.key < (8, 0):
            return ok({"hostids": [h["hostid"] for h in params["hosts"]]})
        return error(-32601, "Method not found.", f'Incorrect method "{method}".')
