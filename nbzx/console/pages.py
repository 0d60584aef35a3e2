"""The console's HTML pages and form actions (server-rendered, Jinja2, no JavaScript)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlencode

import msgspec
from aiohttp import web

from nbzx.common.config import RECONCILE_INTERVALS
from nbzx.common.kafka import ProduceUnavailable
from nbzx.common.logging import get_logger
from nbzx.console.actions import Refused
from nbzx.console.context import COOKIE, IDENTITY, SESSION, console_of, identity_of
from nbzx.console.forms import (
    BadInput,
    host_filters,
    host_key,
    job_filters,
    netbox_filter,
    page_number,
    reconcile_request,
    server_name,
)
from nbzx.console.views import (
    HOST_RESULTS,
    JOB_KINDS,
    JOB_STATUSES,
    difference_rows,
    job_summary,
    query_hosts,
    query_jobs,
)
from nbzx.core.redact import redacted
from nbzx.engine.routes import explain_route
from nbzx.jobs.adopt import adoption_report
from nbzx.schemas.objects import HOST_TYPES

log = get_logger(component="console")


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    c = console_of(request)
    ident = request.get(IDENTITY)
    cookie = request.get(SESSION, "")
    html = c.templates.get_template(template).render(
        identity=ident,
        csrf=c.tokens.csrf(cookie) if cookie else "",
        message=request.query.get("msg", ""),
        summary=job_summary,
        zabbix_url=c.zabbix_url,
        zabbix_urls=c.zabbix_urls,
        servers=c.servers,
        netbox_link=c.netbox_link,
        request=request,
        **context,
    )
    return web.Response(status=status, text=html, content_type="text/html")


def back(path: str, message: str) -> web.HTTPSeeOther:
    sep = "&" if "?" in path else "?"
    return web.HTTPSeeOther(f"{path}{sep}msg={quote(message)}")


def _page_link(request: web.Request, page: int) -> str:
    return f"{request.path}?{urlencode({**request.query, 'page': page})}"


# ---- sign-in ----


async def login_form(request: web.Request) -> web.Response:
    return render(request, "login.html", next=request.query.get("next", "/jobs"), error="")


async def login(request: web.Request) -> web.Response:
    c = console_of(request)
    form = await request.post()
    nxt = str(form.get("next") or "/jobs")
    if not nxt.startswith("/") or nxt.startswith("//"):
        nxt = "/jobs"  # never redirect off this site
    cookie = c.tokens.session(str(form.get("token", "")), c.session_ttl_s)
    if cookie is None:
        log.warning("console_sign_in_refused", remote=request.remote)
        return render(request, "login.html", status=401, next=nxt, error="That token is not valid.")
    ident = c.tokens.verify(cookie)
    assert ident is not None
    log.info("console_signed_in", user=ident.user, role=ident.role)
    response = web.HTTPSeeOther(nxt)
    response.set_cookie(
        COOKIE, cookie, max_age=c.session_ttl_s, httponly=True, samesite="Strict", secure=c.https(request), path="/"
    )
    raise response


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/jobs")


# ---- jobs ----


async def jobs(request: web.Request) -> web.Response:
    c = console_of(request)
    try:
        f = job_filters(request.query)
    except BadInput as exc:
        return web.Response(status=400, text=str(exc))
    page = query_jobs(c.state.jobs.values(), per_page=c.cfg.console.page_size, **f)
    return render(
        request,
        "jobs.html",
        page=page,
        kinds=JOB_KINDS,
        statuses=JOB_STATUSES,
        intervals=RECONCILE_INTERVALS,
        now=now_utc(),
        changelog=c.changelog() if c.cfg.changelog.enabled else None,
        f={k: request.query.get(k, "") for k in ("kind", "status", "since", "until")},
        prev_link=_page_link(request, page.page - 1) if page.page > 1 else "",
        next_link=_page_link(request, page.page + 1) if page.page < page.pages else "",
    )


async def job(request: web.Request) -> web.Response:
    c = console_of(request)
    record = c.state.jobs.get(request.match_info["id"])
    if record is None:
        return render(request, "missing.html", status=404, what=f"job {request.match_info['id']}")
    results = redacted(record.results)
    counts = {k: v for k, v in results.items() if isinstance(v, int) and k not in ("emitted",)}
    return render(
        request,
        "job.html",
        job=record,
        counts=counts,
        progress=results.get("progress"),
        applied=dict(c.state.applied.get(record.job_id, {})),
        plan=results.get("plan") or {},
        changes=results.get("changes") or {},
        other=json.dumps(
            {k: v for k, v in results.items() if k not in counts and k not in ("plan", "changes")},
            indent=2,
            default=str,
        ),
        params=json.dumps(redacted(record.params), indent=2, default=str),
    )


async def confirm_reconcile(request: web.Request) -> web.Response:
    """The confirmation of "Reconcile now": how many NetBox objects the scope holds, to decide on."""
    c = console_of(request)
    filter_text = request.query.get("filter", "").strip()
    try:
        scope = netbox_filter(filter_text)
    except BadInput as exc:
        return render(
            request,
            "confirm.html",
            status=400,
            error=str(exc),
            counts={},
            filter=filter_text,
            known=len(c.state.hosts),
            dry_run=False,
            max_delete=c.cfg.reconcile.max_delete,
        )
    counts: dict[str, int | str] = {}
    if c.engine is not None:
        for t in HOST_TYPES:
            try:
                counts[t] = await c.engine.netbox.count(t, scope)
            except Exception as exc:  # NetBox away (or a filter it refuses): the page still lets them decide
                counts[t] = f"unknown ({type(exc).__name__})"
    return render(
        request,
        "confirm.html",
        error="",
        counts=counts,
        filter=filter_text,
        known=len(c.state.hosts),
        dry_run=request.query.get("dry_run") in ("1", "true", "on"),
        max_delete=c.cfg.reconcile.max_delete,
    )


async def _act(request: web.Request, where: str, action: Any) -> web.Response:
    """Run an action; back to `where` with what happened, or with the error."""
    try:
        message = await action()
    except (BadInput, Refused) as exc:
        raise back(where, f"Not done: {exc}") from exc
    except ProduceUnavailable as exc:
        raise back(where, "Not done: Kafka is unavailable, try again") from exc
    raise back(message[0], message[1])


async def reconcile(request: web.Request) -> web.Response:
    c, ident = console_of(request), identity_of(request)
    form = dict(await request.post())

    async def go() -> tuple[str, str]:
        args = reconcile_request(form, servers=c.servers)
        req = await c.actions.reconcile(ident.user, **args)
        what = "Dry run" if req.dry_run else "Reconcile"
        if req.scheduled_for:
            every = f", then every {req.interval} min" if req.interval else ""
            return f"/jobs/{req.job_id}", f"{what} scheduled for {req.scheduled_for}{every}"
        return f"/jobs/{req.job_id}", f"{what} requested"

    return await _act(request, "/jobs", go)


async def cancel(request: web.Request) -> web.Response:
    c, ident = console_of(request), identity_of(request)
    job_id = request.match_info["id"]

    async def go() -> tuple[str, str]:
        record = c.state.jobs.get(job_id)
        if record is None:
            raise BadInput("no such job")
        await c.actions.cancel(ident.user, record)
        return f"/jobs/{job_id}", "Cancel requested: the schedule stops"

    return await _act(request, f"/jobs/{job_id}", go)


async def retry(request: web.Request) -> web.Response:
    c, ident = console_of(request), identity_of(request)
    job_id = request.match_info["id"]

    async def go() -> tuple[str, str]:
        record = c.state.jobs.get(job_id)
        if record is None:
            raise BadInput("no such job")
        new = await c.actions.retry(ident.user, record)
        return f"/jobs/{new}", f"Retry of {job_id} requested"

    return await _act(request, f"/jobs/{job_id}", go)


# ---- hosts ----


async def hosts(request: web.Request) -> web.Response:
    c = console_of(request)
    try:
        f = host_filters(request.query)
    except BadInput as exc:
        return web.Response(status=400, text=str(exc))
    page = query_hosts(c.state.hosts, per_page=c.cfg.console.page_size, **f)
    return render(
        request,
        "hosts.html",
        page=page,
        results=HOST_RESULTS,
        f=f,
        prev_link=_page_link(request, page.page - 1) if page.page > 1 else "",
        next_link=_page_link(request, page.page + 1) if page.page < page.pages else "",
    )


async def host(request: web.Request) -> web.Response:
    c = console_of(request)
    try:
        key = host_key(request.match_info["key"])
    except BadInput as exc:
        return web.Response(status=400, text=str(exc))
    diffs, diff_error, routing = [], "", None
    if c.engine is not None:
        try:
            views = await c.engine.explain(key)
            diffs = [{"view": v, "rows": difference_rows(v.desired, v.actual, v.plan)} for v in views]
            if len(c.servers) > 1:
                routing = await explain_route(c.engine, key)
        except Exception as exc:  # NetBox or Zabbix away: the page shows the rest
            diff_error = f"{type(exc).__name__}: {exc}"
    else:
        diff_error = "this console has no NetBox and Zabbix connection"
    return render(
        request,
        "host.html",
        key=key,
        host_status=c.state.hosts.get(key),
        recent=list(c.state.history.get(key, [])),
        diffs=diffs,
        routing=routing,
        several=len(c.servers) > 1,
        diff_error=diff_error,
        object_url=c.netbox_link(key),
    )


async def sync_host(request: web.Request) -> web.Response:
    c, ident = console_of(request), identity_of(request)
    raw = request.match_info["key"]

    async def go() -> tuple[str, str]:
        key = host_key(raw)
        job_id = await c.actions.sync_host(ident.user, key)
        return f"/hosts/{key}", f"Sync of {key} requested (job {job_id})"

    return await _act(request, f"/hosts/{raw}", go)


# ---- dead letters ----


async def dead_letters(request: web.Request) -> web.Response:
    c = console_of(request)
    letters = list(c.state.letters)
    try:
        page_no = page_number(request.query)
    except BadInput as exc:
        return web.Response(status=400, text=str(exc))
    per = c.cfg.console.page_size
    shown = letters[(page_no - 1) * per : page_no * per]
    rows = [(p, o, d, c.state.hosts.get(d.host_key)) for p, o, d in shown]
    return render(
        request,
        "dead_letters.html",
        rows=rows,
        total=len(letters),
        page_no=page_no,
        pages=max(1, -(-len(letters) // per)),
    )


async def dead_letter(request: web.Request) -> web.Response:
    c = console_of(request)
    try:
        partition, offset = int(request.match_info["partition"]), int(request.match_info["offset"])
    except ValueError:
        return web.Response(status=400, text="partition and offset are numbers")
    letter = c.state.letter(partition, offset)
    if letter is None:
        return render(request, "missing.html", status=404, what=f"dead letter {partition}/{offset}")
    try:
        original = json.dumps(redacted(msgspec.json.decode(letter.original)), indent=2)
    except msgspec.DecodeError:
        original = letter.original  # not JSON: shown as it was (it is why it is here)
    return render(request, "dead_letter.html", letter=letter, partition=partition, offset=offset, original=original)


async def retry_letters(request: web.Request) -> web.Response:
    c, ident = console_of(request), identity_of(request)
    form = await request.post()

    async def go() -> tuple[str, str]:
        wanted = str(form.get("host_key") or "")
        keys, missing = c.state.letter_keys([host_key(wanted)] if wanted else [])
        if missing:
            raise BadInput(f"no dead letter for {', '.join(missing)}")
        job_id = await c.actions.retry_letters(ident.user, keys)
        return "/dead-letters", f"{len(keys)} host(s) re-queued (job {job_id})"

    return await _act(request, "/dead-letters", go)


# ---- adoption ----


async def adoption(request: web.Request) -> web.Response:
    """What `nbzx adopt plan` prints, computed now (nothing is written)."""
    c = console_of(request)
    report, error = None, ""
    try:
        server = server_name(request.query.get("server", ""), c.servers)
    except BadInput as exc:
        return web.Response(status=400, text=str(exc))
    if c.engine is None:
        error = "this console has no NetBox and Zabbix connection"
    else:
        try:
            report = await adoption_report(c.engine, server)
        except Exception as exc:  # NetBox or Zabbix away: say so
            error = f"{type(exc).__name__}: {exc}"
    return render(request, "adoption.html", report=report, error=error, server=server)


async def adopt(request: web.Request) -> web.Response:
    c, ident = console_of(request), identity_of(request)
    form = await request.post()

    async def go() -> tuple[str, str]:
        keys = [host_key(str(v)) for v in form.getall("host_key", [])]
        if not keys and form.get("all") != "1":
            raise BadInput("choose hosts to adopt, or adopt all valid ones")
        job_id = await c.actions.adopt(ident.user, keys, server_name(form.get("server", ""), c.servers))
        return f"/jobs/{job_id}", f"Adoption of {len(keys) or 'every valid'} host(s) requested"

    return await _act(request, "/adoption", go)


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M")


STYLE = (files("nbzx.console") / "templates" / "console.css").read_bytes()


async def style(_request: web.Request) -> web.Response:
    return web.Response(body=STYLE, content_type="text/css", headers={"Cache-Control": "max-age=3600"})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/static/console.css", style)
    r.add_get("/login", login_form)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/", home)
    r.add_get("/jobs", jobs)
    r.add_get("/jobs/{id}", job)
    r.add_get("/reconcile", confirm_reconcile)
    r.add_post("/reconcile", reconcile)
    r.add_post("/jobs/{id}/cancel", cancel)
    r.add_post("/jobs/{id}/retry", retry)
    r.add_get("/hosts", hosts)
    r.add_get("/hosts/{key}", host)
    r.add_post("/hosts/{key}/sync", sync_host)
    r.add_get("/dead-letters", dead_letters)
    r.add_get("/dead-letters/{partition}/{offset}", dead_letter)
    r.add_post("/dead-letters/retry", retry_letters)
    r.add_get("/adoption", adoption)
    r.add_post("/adoption", adopt)
