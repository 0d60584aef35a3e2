"""The console's aiohttp application: sign-in, the role and CSRF checks, and the routes of
`nbzx.console.pages` (HTML) and `nbzx.console.api` (JSON). DESIGN §7."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from nbzx.common.config import Config
from nbzx.common.guard import Guard, Handler
from nbzx.common.http import add_health_routes
from nbzx.common.kafka import Producer, check_credentials
from nbzx.common.logging import get_logger
from nbzx.console import api, pages
from nbzx.console.actions import Actions
from nbzx.console.auth import Identity, Tokens
from nbzx.console.context import CONSOLE, COOKIE, IDENTITY, SESSION, Console, console_of, json_response
from nbzx.console.state import ConsoleState
from nbzx.engine.sync import SyncEngine

log = get_logger(component="console")

OPEN_PATHS = ("/login", "/healthz", "/readyz", "/metrics", "/static/")


def _authenticate(request: web.Request, tokens: Tokens) -> tuple[Identity | None, str]:
    """The identity of a bearer token or a session cookie, and the cookie ("" for a bearer)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return tokens.identify(token), ""
    cookie = request.cookies.get(COOKIE, "")
    return (tokens.verify(cookie) if cookie else None), cookie


@web.middleware
async def access(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    """Sign-in for every page and route; operator role and CSRF token for every action (POST)."""
    if request.path.startswith(OPEN_PATHS):
        return await handler(request)
    c = console_of(request)
    api = request.path.startswith("/api/")
    ident, cookie = _authenticate(request, c.tokens)
    if ident is None:
        if api:
            return json_response(401, {"error": "sign in: a viewer or operator token as a bearer token"})
        raise web.HTTPSeeOther(f"/login?next={request.path_qs}")
    request[IDENTITY], request[SESSION] = ident, cookie
    if request.method == "POST" and request.path != "/logout":
        if not ident.can_act:
            log.warning("console_action_refused", user=ident.user, role=ident.role, path=request.path)
            return _refuse(api, 403, f"{ident.user} is a viewer: actions need the operator role")
        if cookie:  # a browser session: the request must come from our own form
            given = request.headers.get("X-CSRF-Token", "")
            if not given and not api:
                given = str((await request.post()).get("csrf", ""))
            if not c.tokens.csrf_ok(cookie, given):
                log.warning("console_csrf_refused", user=ident.user, path=request.path)
                return _refuse(api, 403, "missing or wrong CSRF token: reload the page and try again")
    return await handler(request)


# No script runs on a console page and every style is in /static/console.css: anything else is refused.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def security_headers(https: Callable[[web.Request], bool]) -> Middleware:
    """Every answer (refusals and redirects too) may not be framed, sniffed or cached; HSTS over HTTPS."""

    def add(request: web.Request, headers: MutableMapping[str, str]) -> None:
        headers["Content-Security-Policy"] = CSP
        headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "same-origin"
        headers.setdefault("Cache-Control", "no-store")
        if https(request):
            headers["Strict-Transport-Security"] = "max-age=31536000"

    @web.middleware
    async def secure(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            add(request, exc.headers)
            raise
        add(request, response.headers)
        return response

    return secure


def _refuse(api: bool, status: int, message: str) -> web.Response:
    if api:
        return json_response(status, {"error": message})
    return web.Response(status=status, text=message, content_type="text/plain")


def make_app(
    cfg: Config, producer: Producer, engine: SyncEngine | None, state: ConsoleState | None = None
) -> web.Application:
    """The console application; the state's topic followers and the producer start and stop with it."""
    # Sign-in attempts are what a rate limit protects here: every other route needs a valid session.
    state = state or ConsoleState(cfg)
    console = Console(cfg, state, Actions(cfg, producer, seen=state.add_job), engine)
    guard = Guard(cfg.console.access, "console", limited=lambda r: r.method == "POST" and r.path == "/login")
    app = web.Application(middlewares=[security_headers(console.https), guard.middleware, access])
    app[CONSOLE] = console

    async def lifecycle(app: web.Application) -> Any:
        await check_credentials(cfg)
        await producer.start()
        console.state.start()
        yield
        await console.state.stop()
        await producer.stop()

    app.cleanup_ctx.append(lifecycle)
    pages.add_routes(app)
    api.add_routes(app)

    async def ready() -> bool:
        return console.state.caught_up

    add_health_routes(app, ready, "still reading the jobs, host-status and dead-letter topics")
    return app
