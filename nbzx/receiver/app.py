"""The aiohttp receiver: signed NetBox webhooks in, Kafka records out, keyed by host.

Nothing is acknowledged that is not stored: `/webhook` answers 202 only after Kafka acknowledged
the record (acks=all, idempotent producer), and 503 when it could not, so NetBox retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from typing import Any

import msgspec
from aiohttp import web

from nbzx.common.config import Config, zabbix_servers
from nbzx.common.guard import Guard
from nbzx.common.http import add_health_routes
from nbzx.common.kafka import Producer, ProduceUnavailable, check_credentials
from nbzx.common.logging import get_logger
from nbzx.core.webhook import OWN_WRITE, Delivery, inspect_delivery
from nbzx.jobs.records import JobView, newest_first, reconcile_request
from nbzx.jobs.schedule import run_scheduler
from nbzx.receiver import metrics
from nbzx.schemas.messages import encode
from nbzx.schemas.objects import HostType

log = get_logger(component="receiver")

CONFIG: web.AppKey[Config] = web.AppKey("config", Config)
PRODUCER: web.AppKey[Producer] = web.AppKey("producer", Producer)
JOBS: web.AppKey[JobView] = web.AppKey("jobs", JobView)


def _json(status: int, payload: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=msgspec.json.encode(payload), content_type="application/json")


async def webhook(request: web.Request) -> web.Response:
    """POST /webhook: verify, normalise, produce, then 202 with where the record landed."""
    cfg = request.app[CONFIG]
    limit = cfg.receiver.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        metrics.WEBHOOKS.labels("too_large").inc()
        return _json(413, {"error": f"body is {request.content_length} bytes, over the {limit} limit"})
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        metrics.WEBHOOKS.labels("too_large").inc()
        return _json(413, {"error": f"body is over the {limit} byte limit"})
    received_at = time.time()
    result = inspect_delivery(
        Delivery(raw, request.headers.get("X-Hook-Signature"), request.headers.get("Content-Type")),
        cfg.secrets.webhook_secret,
        max_body_bytes=limit,
        object_types=cfg.receiver.object_types,
        vc_as_one_host=cfg.receiver.virtual_chassis_as_one_host,
        received_at=received_at,
        own_fields=cfg.netbox.write_back.own_fields,
    )
    if result.status != 202:
        label = {401: "unauthorized", 413: "too_large", 415: "bad_content_type"}.get(result.status, "bad_request")
        metrics.WEBHOOKS.labels(label).inc()
        log.warning("webhook_rejected", status=result.status, reason=result.reason, remote=request.remote)
        return _json(result.status, {"error": result.reason})
    if result.event is None:
        # Our own write-back coming back is counted apart: an operator can see the loop being cut.
        metrics.WEBHOOKS.labels("own_write" if result.reason == OWN_WRITE else "ignored").inc()
        return _json(202, {"ignored": result.ignored, "reason": result.reason})
    ev = result.event
    t0 = time.perf_counter()
    try:
        partition, offset = await request.app[PRODUCER].send(cfg.kafka.topics.events, ev.host_key, encode(ev))
    except ProduceUnavailable as exc:
        metrics.WEBHOOKS.labels("unavailable").inc()
        log.error("webhook_not_stored", host_key=ev.host_key, error=str(exc))
        return _json(503, {"error": "Kafka is unavailable; the event was not stored, retry later"})
    metrics.PRODUCE_SECONDS.observe(time.perf_counter() - t0)
    metrics.WEBHOOKS.labels("accepted").inc()
    log.info(
        "webhook_accepted",
        host_key=ev.host_key,
        change=ev.event,
        object_type=ev.object_type,
        object_id=ev.object_id,
        changed=ev.changed,
        partition=partition,
        offset=offset,
    )
    return _json(
        202,
        {
            "id": ev.id,
            "host_key": ev.host_key,
            "topic": cfg.kafka.topics.events,
            "partition": partition,
            "offset": offset,
        },
    )


class _ReconcileBody(msgspec.Struct, forbid_unknown_fields=True):
    # The object types a reconcile lists; anything else is a 400, not a no-op job.
    object_types: list[HostType] = msgspec.field(default_factory=list)
    filter: dict[str, Any] = msgspec.field(default_factory=dict)
    dry_run: bool = False
    servers: list[str] = msgspec.field(default_factory=list)  # Zabbix servers by name; none: all


def authorized(request: web.Request) -> bool:
    """Bearer token check (constant time) for the API routes; never the webhook secret."""
    token = request.app[CONFIG].secrets.api_token
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


async def jobs(request: web.Request) -> web.Response:
    """GET /jobs: job records, newest first (`?kind=reconcile&status=running&limit=50`)."""
    if not authorized(request):
        return _json(401, {"error": "missing or wrong bearer token"})
    rows = newest_first(request.app[JOBS].jobs)
    for key in ("kind", "status", "trigger"):
        if key in request.query:
            attr = "job_kind" if key == "kind" else key
            rows = [r for r in rows if getattr(r, attr) == request.query[key]]
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        limit = 0
    if limit < 1:
        return _json(400, {"error": "limit must be a whole number of at least 1"})
    return _json(200, {"jobs": msgspec.to_builtins(rows[:limit])})


async def job(request: web.Request) -> web.Response:
    """GET /jobs/{id}: one job record."""
    if not authorized(request):
        return _json(401, {"error": "missing or wrong bearer token"})
    record = request.app[JOBS].jobs.get(request.match_info["id"])
    if record is None:
        return _json(404, {"error": "no such job"})
    return _json(200, msgspec.to_builtins(record))


async def reconcile(request: web.Request) -> web.Response:
    """POST /reconcile: produce a ReconcileRequest to the control topic; 202 with the job id."""
    if not authorized(request):
        metrics.RECONCILE_REQUESTS.labels("unauthorized").inc()
        return _json(401, {"error": "missing or wrong bearer token"})
    raw = await request.read()
    try:
        body = msgspec.json.decode(raw, type=_ReconcileBody) if raw.strip() else _ReconcileBody()
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        metrics.RECONCILE_REQUESTS.labels("bad_request").inc()
        return _json(400, {"error": f"bad reconcile request: {exc}"})
    unknown = sorted(set(body.servers) - set(zabbix_servers(request.app[CONFIG])))
    if unknown:
        metrics.RECONCILE_REQUESTS.labels("bad_request").inc()
        return _json(400, {"error": f"bad reconcile request: no Zabbix server named {', '.join(unknown)}"})
    req = reconcile_request(
        "api",
        user=request.headers.get("X-Nbzx-User"),
        dry_run=body.dry_run,
        object_types=list(body.object_types),
        filter=body.filter,
        servers=body.servers,
    )
    cfg = request.app[CONFIG]
    try:
        await request.app[PRODUCER].send(cfg.kafka.topics.control, "reconcile", encode(req))
    except ProduceUnavailable as exc:
        metrics.RECONCILE_REQUESTS.labels("unavailable").inc()
        log.error("reconcile_not_stored", job_id=req.job_id, error=str(exc))
        return _json(503, {"error": "Kafka is unavailable; the reconcile was not requested, retry later"})
    metrics.RECONCILE_REQUESTS.labels("accepted").inc()
    log.info("reconcile_requested", job_id=req.job_id, dry_run=req.dry_run)
    return _json(202, {"job_id": req.job_id, "dry_run": req.dry_run})


def make_app(cfg: Config, producer: Producer | None = None, job_view: JobView | None = None) -> web.Application:
    """The receiver application; the producer starts and stops with it."""
    # Leave headroom over the limit so an oversized body gets our 413 message, not aiohttp's.
    guard = Guard(cfg.receiver.access, "receiver", limited=lambda _request: True)
    app = web.Application(client_max_size=cfg.receiver.max_body_bytes + 1, middlewares=[guard.middleware])
    app[CONFIG] = cfg
    app[PRODUCER] = producer or Producer(cfg, client_id=f"{cfg.kafka.client_id}-receiver")

    app[JOBS] = job_view or JobView(cfg)

    async def lifecycle(app: web.Application) -> Any:
        await check_credentials(cfg)
        await app[PRODUCER].start()
        app[JOBS].start()
        stopping = asyncio.Event()
        schedule = asyncio.create_task(run_scheduler(cfg, app[PRODUCER], stopping)) if cfg.receiver.scheduler else None
        yield
        stopping.set()
        if schedule is not None:
            with contextlib.suppress(Exception):
                await schedule
        await app[JOBS].stop()
        await app[PRODUCER].stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/webhook", webhook)
    app.router.add_post("/reconcile", reconcile)
    app.router.add_get("/jobs", jobs)
    app.router.add_get("/jobs/{id}", job)
    add_health_routes(app, app[PRODUCER].ready, "kafka unreachable")
    return app
