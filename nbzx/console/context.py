"""What every console handler reads: the `Console` (config, state, actions, engine, templates) and
the signed-in identity, and how it answers JSON. Below `app`, `pages` and `api`, which all use it."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from nbzx.common.config import Config, parse_duration, zabbix_servers
from nbzx.common.guard import networks, over_https
from nbzx.console.actions import Actions
from nbzx.console.auth import Identity, Tokens
from nbzx.console.state import ConsoleState
from nbzx.core.changelog import follower_view
from nbzx.engine.sync import SyncEngine
from nbzx.schemas.objects import object_url

COOKIE = "nbzx_session"


class Console:
    """Everything a handler needs: config, state, actions, the engine (for live plans) and templates."""

    def __init__(self, cfg: Config, state: ConsoleState, actions: Actions, engine: SyncEngine | None) -> None:
        self.cfg, self.state, self.actions, self.engine = cfg, state, actions, engine
        self.tokens = Tokens(cfg.secrets.console_viewer_tokens, cfg.secrets.console_operator_tokens)
        self.session_ttl_s = parse_duration(cfg.console.session_ttl)
        self.templates = Environment(
            loader=PackageLoader("nbzx.console", "templates"), autoescape=select_autoescape(["html"])
        )
        console_url = (cfg.console.zabbix_frontend_url or "").removesuffix("/api_jsonrpc.php").rstrip("/")
        servers = zabbix_servers(cfg)
        self.zabbix_url = console_url or next(iter(servers.values())).ui_url
        # Each server's frontend, for links to its hosts (the console's own override is the first server's).
        self.zabbix_urls = {name: s.ui_url for name, s in servers.items()} | {next(iter(servers)): self.zabbix_url}
        self.servers = list(servers)
        self.trusted = networks(cfg.console.access.trusted_proxies)

    def https(self, request: web.Request) -> bool:
        """The request came over HTTPS (to us, or to a trusted proxy in front): cookies are Secure."""
        return over_https(request, self.trusted)

    def changelog(self) -> dict[str, Any]:
        """The change-log follower as the jobs page and `/api/v1/changelog` show it (DESIGN §13): stale
        when its leader has not read the change log for three heartbeats."""
        return follower_view(self.state.changelog, time.time(), 3 * self.cfg.changelog.heartbeat_s)

    def netbox_link(self, host_key: str) -> str:
        """Where the host key's object is in NetBox ("" for a key that is not a host's)."""
        return object_url(self.cfg.netbox.url, host_key)


CONSOLE: web.AppKey[Console] = web.AppKey("console", Console)
IDENTITY: web.RequestKey[Identity] = web.RequestKey("identity", Identity)
SESSION: web.RequestKey[str] = web.RequestKey("session", str)  # the session cookie ("" for a bearer token)


def console_of(request: web.Request) -> Console:
    return request.app[CONSOLE]


def identity_of(request: web.Request) -> Identity:
    return request[IDENTITY]


def json_response(status: int, payload: Any) -> web.Response:
    return web.Response(status=status, body=msgspec.json.encode(payload), content_type="application/json")
