"""The console's JSON API (`/api/v1/...`): the same data and actions as the pages. docs/console-api.yaml."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
from aiohttp import web

from nbzx.common.kafka import ProduceUnavailable
from nbzx.console.actions import Refused
from nbzx.console.context import Console, console_of, identity_of, json_response
from nbzx.console.forms import (
    BadInput,
    host_filters,
    host_key,
    host_keys,
    job_filters,
    only_fields,
    reconcile_json,
    server_name,
)
from nbzx.console.views import difference_rows, job_summary, query_hosts, query_jobs
from nbzx.core.redact import redacted
from nbzx.engine.routes import explain_route
from nbzx.engine.sync import SyncEngine
from nbzx.jobs.adopt import adoption_report
from nbzx.schemas.messages import JobRecord


def job_json(c: Any, record: JobRecord) -> dict[str, Any]:
    """A job record as the API shows it: with its one-line summary and, for a reconcile, what its syncs did."""
    out: dict[str, Any] = redacted(msgspec.to_builtins(record))
    out["summary"] = job_summary(record)
    applied = c.state.applied.get(record.job_id)
    if applied:
        out["applied"] = dict(applied)
    return out


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:  # no body: the defaults (whitespace alone is not JSON, and is refused)
        return {}
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise BadInput(f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object")
    return body


def _errors(handler: Any) -> Any:
    """A bad parameter is a 400, Kafka away a 503: with a message, never a traceback."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except BadInput as exc:
            return json_response(400, {"error": str(exc)})
        except ProduceUnavailable:
            return json_response(503, {"error": "Kafka is unavailable; nothing was requested, retry later"})
        except NoEngine as exc:
            return json_response(503, {"error": str(exc)})

    return wrapped


class NoEngine(Exception):
    """The console runs without NetBox and Zabbix clients: what needs them is a 503."""


def engine_of(c: Console) -> SyncEngine:
    """The console's engine, for the routes that read NetBox and Zabbix live."""
    if c.engine is None:
        raise NoEngine("this console has no NetBox and Zabbix connection")
    return c.engine


@_errors
async def jobs(request: web.Request) -> web.Response:
    c = console_of(request)
    f = job_filters(request.query)
    page = query_jobs(c.state.jobs.values(), per_page=c.cfg.console.page_size, **f)
    items = [job_json(c, j) for j in page.items]
    return json_response(200, {"jobs": items, "total": page.total, "page": page.page, "pages": page.pages})


@_errors
async def job(request: web.Request) -> web.Response:
    c = console_of(request)
    record = c.state.jobs.get(request.match_info["id"])
    if record is None:
        return json_response(404, {"error": "no such job"})
    return json_response(200, job_json(c, record))


@_errors
async def reconcile(request: web.Request) -> web.Response:
    c, ident = console_of(request), identity_of(request)
    req = await c.actions.reconcile(ident.user, **reconcile_json(await _body(request), c.servers))
    return json_response(202, {"job_id": req.job_id, "scheduled_for": req.scheduled_for, "interval": req.interval})


@_errors
async def cancel(request: web.Request) -> web.Response:
    c, ident = console_of(request), identity_of(request)
    record = c.state.jobs.get(request.match_info["id"])
    if record is None:
        return json_response(404, {"error": "no such job"})
    try:
        await c.actions.cancel(ident.user, record)
    except Refused as exc:
        return json_response(409, {"error": str(exc)})
    return json_response(202, {"job_id": record.job_id, "cancelled_by": ident.user})


@_errors
async def retry(request: web.Request) -> web.Response:
    c, ident = console_of(request), identity_of(request)
    record = c.state.jobs.get(request.match_info["id"])
    if record is None:
        return json_response(404, {"error": "no such job"})
    try:
        job_id = await c.actions.retry(ident.user, record)
    except Refused as exc:
        return json_response(409, {"error": str(exc)})
    return json_response(202, {"job_id": job_id, "retry_of": record.job_id})


@_errors
async def hosts(request: web.Request) -> web.Response:
    c = console_of(request)
    page = query_hosts(c.state.hosts, per_page=c.cfg.console.page_size, **host_filters(request.query))
    items = msgspec.to_builtins(page.items)
    return json_response(200, {"hosts": items, "total": page.total, "page": page.page, "pages": page.pages})


@_errors
async def host(request: web.Request) -> web.Response:
    c = console_of(request)
    key = host_key(request.match_info["key"])
    status = c.state.hosts.get(key)
    if status is None:
        return json_response(404, {"error": f"no sync of {key} seen yet"})
    recent = msgspec.to_builtins(list(c.state.history.get(key, [])))
    return json_response(200, {"status": msgspec.to_builtins(status), "recent": recent})


@_errors
async def difference(request: web.Request) -> web.Response:
    c = console_of(request)
    key = host_key(request.match_info["key"])
    servers = []
    for v in await engine_of(c).explain(key):
        rows = difference_rows(v.desired, v.actual, v.plan)
        servers.append(
            {
                "server": v.server,
                "routed": v.routed,
                "action": v.plan.action,
                "reason": v.plan.reason,
                "differs": [r.field for r in rows if r.differs],
                "fields": msgspec.to_builtins(rows),
            }
        )
    # The first server's difference at the top level too (a one-server config has only that one).
    first = servers[0] if servers else {"action": "noop", "reason": "routed to no server", "differs": [], "fields": []}
    return json_response(
        200, {"host_key": key, **{k: v for k, v in first.items() if k not in ("server", "routed")}, "servers": servers}
    )


@_errors
async def route(request: web.Request) -> web.Response:
    c = console_of(request)
    key = host_key(request.match_info["key"])
    return json_response(200, msgspec.to_builtins(await explain_route(engine_of(c), key)))


@_errors
async def adoption(request: web.Request) -> web.Response:
    c = console_of(request)
    server = server_name(request.query.get("server", ""), c.servers)
    return json_response(200, msgspec.to_builtins(await adoption_report(engine_of(c), server)))


@_errors
async def adopt(request: web.Request) -> web.Response:
    c, ident = console_of(request), identity_of(request)
    body = only_fields(await _body(request), "host_keys", "server")
    server = server_name(body.get("server", ""), c.servers)
    keys = body.get("host_keys")
    if keys == "all":
        keys = []
    elif not keys:
        raise BadInput('host_keys: a list of host keys, or "all" for every valid one')
    else:
        keys = host_keys(keys)
    job_id = await c.actions.adopt(ident.user, keys, server)
    return json_response(202, {"job_id": job_id, "host_keys": keys or "all"})


@_errors
async def sync_host(request: web.Request) -> web.Response:
    c, ident = console_of(request), identity_of(request)
    key = host_key(request.match_info["key"])
    return json_response(202, {"job_id": await c.actions.sync_host(ident.user, key), "host_key": key})


@_errors
async def dead_letters(request: web.Request) -> web.Response:
    c = console_of(request)
    letters = [
        {"partition": p, "offset": o, **redacted(msgspec.to_builtins(d)), "original": None}
        for p, o, d in itertools.islice(c.state.letters, c.cfg.console.page_size * 10)
    ]
    return json_response(200, {"dead_letters": letters, "total": len(c.state.letters)})


@_errors
async def retry_letters(request: web.Request) -> web.Response:
    c, ident = console_of(request), identity_of(request)
    body = only_fields(await _body(request), "host_keys")
    keys, missing = c.state.letter_keys(host_keys(body["host_keys"]) if "host_keys" in body else [])
    if missing:
        return json_response(404, {"error": f"no dead letter for {', '.join(missing)}"})
    job_id = await c.actions.retry_letters(ident.user, keys)
    return json_response(202, {"job_id": job_id, "host_keys": keys})


async def changelog(request: web.Request) -> web.Response:
    c = console_of(request)
    return json_response(200, {"enabled": c.cfg.changelog.enabled, **c.changelog()})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/jobs", jobs)
    r.add_get("/api/v1/jobs/{id}", job)
    r.add_post("/api/v1/reconcile", reconcile)
    r.add_post("/api/v1/jobs/{id}/cancel", cancel)
    r.add_post("/api/v1/jobs/{id}/retry", retry)
    r.add_get("/api/v1/hosts", hosts)
    r.add_get("/api/v1/hosts/{key}", host)
    r.add_get("/api/v1/hosts/{key}/difference", difference)
    r.add_get("/api/v1/hosts/{key}/route", route)
    r.add_post("/api/v1/hosts/{key}/sync", sync_host)
    r.add_get("/api/v1/changelog", changelog)
    r.add_get("/api/v1/dead-letters", dead_letters)
    r.add_post("/api/v1/dead-letters/retry", retry_letters)
    r.add_get("/api/v1/adoption", adoption)
    r.add_post("/api/v1/adoption", adopt)
