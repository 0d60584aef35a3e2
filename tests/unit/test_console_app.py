"""The console's routes without services: sign-in, roles, CSRF, input checks and what each action
asks of Kafka. The producer here records what would be sent (the real Kafka round trip is in
tests/integration/test_console_kafka.py); the state is fed records directly."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from nbzx.common.config import parse_config
from nbzx.console.app import make_app
from nbzx.console.state import ConsoleState
from nbzx.schemas.messages import (
    AdoptRequest,
    CancelRequest,
    ChangelogCursor,
    DeadLetter,
    HostStatus,
    JobRecord,
    ReconcileRequest,
    SyncRequest,
    decode,
    encode,
    utc_now,
)
from tests.unit.test_receiver_app import RecordingProducer

pytestmark = pytest.mark.unit

ENV = {"NBZX_CONSOLE_VIEWER_TOKENS": "victor:view-tok", "NBZX_CONSOLE_OPERATOR_TOKENS": "alice:op-tok"}
CFG = parse_config("{}", ENV)


def sent(producer: RecordingProducer, kind: type) -> list[Any]:
    """The messages of one kind the console produced, decoded."""
    return [m for m in (decode(v) for _, _, v in producer.sent) if isinstance(m, kind)]


class _Rec:
    def __init__(self, msg: Any, partition: int = 0, offset: int = 0) -> None:
        self.value, self.partition, self.offset = encode(msg), partition, offset


@pytest.fixture
async def console(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> AsyncIterator[tuple[TestClient[Any, Any], RecordingProducer, ConsoleState]]:
    producer = RecordingProducer()
    state = ConsoleState(CFG, follow=False)
    client = await aiohttp_client(make_app(CFG, producer, None, state))  # type: ignore[arg-type]
    yield client, producer, state


async def sign_in(client: TestClient[Any, Any], token: str) -> str:
    """Sign in; returns the CSRF token the pages of this session carry."""
    r = await client.post("/login", data={"token": token, "next": "/jobs"}, allow_redirects=False)
    assert r.status == 303, await r.text()
    page = await (await client.get("/jobs")).text()
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    return m.group(1) if m else ""


async def test_pages_need_sign_in_and_the_api_a_token(console: Any) -> None:
    client, _, _ = console
    r = await client.get("/hosts", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/login?next=/hosts"
    r = await client.get("/api/v1/jobs")
    assert r.status == 401
    r = await client.get("/api/v1/jobs", headers={"Authorization": "Bearer nope"})
    assert r.status == 401
    assert (await client.get("/healthz")).status == 200


async def test_a_wrong_token_is_refused_and_a_right_one_gets_a_strict_http_only_cookie(console: Any) -> None:
    client, _, _ = console
    r = await client.post("/login", data={"token": "guess"}, allow_redirects=False)
    assert r.status == 401 and "not valid" in await r.text()
    r = await client.post("/login", data={"token": "op-tok", "next": "//evil.example/x"}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/jobs"  # never sent off-site
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "op-tok" not in cookie


async def test_a_viewer_sees_no_actions_and_their_posts_are_refused(console: Any) -> None:
    client, producer, state = console
    state.apply_jobs([_Rec(JobRecord(job_id="f1", job_kind="reconcile", status="failed", error="x"))])
    csrf = await sign_in(client, "view-tok")
    jobs = await (await client.get("/jobs")).text()
    assert 'id="actions"' not in jobs and "victor (viewer)" in jobs
    assert 'id="retry"' not in await (await client.get("/jobs/f1")).text()
    for path in ("/reconcile", "/jobs/f1/retry", "/hosts/dcim.device:1/sync", "/dead-letters/retry", "/adoption"):
        r = await client.post(path, data={"csrf": csrf}, allow_redirects=False)
        assert r.status == 403, path
    r = await client.post("/api/v1/reconcile", headers={"Authorization": "Bearer view-tok"})
    assert r.status == 403
    assert producer.sent == []


async def test_an_action_without_the_sessions_csrf_token_is_refused(console: Any) -> None:
    client, producer, _ = console
    csrf = await sign_in(client, "op-tok")
    assert csrf
    for data in ({}, {"csrf": "0" * 64}):
        r = await client.post("/reconcile", data=data, allow_redirects=False)
        assert r.status == 403 and "CSRF" in await r.text()
    r = await client.post("/api/v1/reconcile", json={})  # the API with the session cookie needs the header
    assert r.status == 403
    assert producer.sent == []
    r = await client.post("/api/v1/reconcile", json={}, headers={"X-CSRF-Token": csrf})
    assert r.status == 202


async def test_reconcile_now_from_the_page_is_a_request_and_a_job_naming_the_user(console: Any) -> None:
    client, producer, _ = console
    csrf = await sign_in(client, "op-tok")
    r = await client.post("/reconcile", data={"csrf": csrf}, allow_redirects=False)
    assert r.status == 303
    [req] = sent(producer, ReconcileRequest)
    assert (req.user, req.trigger, req.dry_run, req.scheduled_for) == ("alice", "console", False, None)
    [job] = sent(producer, JobRecord)
    assert (job.job_id, job.status, job.user, job.job_kind) == (req.job_id, "pending", "alice", "reconcile")
    assert r.headers["Location"].startswith(f"/jobs/{req.job_id}?msg=")


async def test_a_schedule_and_a_bad_one(console: Any) -> None:
    client, producer, _ = console
    auth = {"Authorization": "Bearer op-tok"}
    r = await client.post("/api/v1/reconcile", json={"scheduled_for": "2099-01-01T00:00", "interval": 60}, headers=auth)
    assert r.status == 202
    [req] = sent(producer, ReconcileRequest)
    assert (req.scheduled_for, req.interval, req.user) == ("2099-01-01T00:00:00+00:00", 60, "alice")
    assert sent(producer, JobRecord)[0].status == "scheduled"
    r = await client.post("/api/v1/reconcile", json={"interval": 7}, headers=auth)
    assert r.status == 400 and "interval must be one of" in (await r.json())["error"]
    r = await client.post("/api/v1/reconcile", data=b"{not json", headers=auth)
    assert r.status == 400
    assert len(sent(producer, ReconcileRequest)) == 1


async def test_cancel_only_a_scheduled_job(console: Any) -> None:
    client, producer, state = console
    state.apply_jobs(
        [
            _Rec(JobRecord(job_id="s1", job_kind="reconcile", status="scheduled", scheduled_for="2099-01-01")),
            _Rec(JobRecord(job_id="d1", job_kind="reconcile", status="completed")),
        ]
    )
    auth = {"Authorization": "Bearer op-tok"}
    assert (await client.post("/api/v1/jobs/d1/cancel", headers=auth)).status == 409
    assert (await client.post("/api/v1/jobs/zz/cancel", headers=auth)).status == 404
    r = await client.post("/api/v1/jobs/s1/cancel", headers=auth)
    assert r.status == 202
    [cancel] = sent(producer, CancelRequest)
    assert (cancel.job_id, cancel.user) == ("s1", "alice")


async def test_retry_runs_a_failed_job_again_with_its_parameters(console: Any) -> None:
    client, producer, state = console
    params = {"dry_run": True, "object_types": ["dcim.device"], "filter": {"site": "lab"}}
    state.apply_jobs(
        [
            _Rec(JobRecord(job_id="f1", job_kind="dry_run", status="failed", params=params)),
            _Rec(JobRecord(job_id="ok", job_kind="reconcile", status="completed")),
            _Rec(JobRecord(job_id="b1", job_kind="backfill", status="errored")),
            _Rec(JobRecord(job_id="h1", job_kind="host_sync", status="failed", params={"host_key": "dcim.device:4"})),
        ]
    )
    auth = {"Authorization": "Bearer op-tok"}
    r = await client.post("/api/v1/jobs/f1/retry", headers=auth)
    assert r.status == 202
    [req] = sent(producer, ReconcileRequest)
    assert (req.dry_run, req.scope.object_types, req.scope.filter, req.retry_of) == (
        True,
        ["dcim.device"],
        {"site": "lab"},
        "f1",
    )
    assert (await client.post("/api/v1/jobs/ok/retry", headers=auth)).status == 409
    r = await client.post("/api/v1/jobs/b1/retry", headers=auth)
    assert r.status == 409 and "nbzx replay" in (await r.json())["error"]
    assert (await client.post("/api/v1/jobs/h1/retry", headers=auth)).status == 202
    [sync] = sent(producer, SyncRequest)
    assert (sync.host_key, sync.reason, sync.user) == ("dcim.device:4", "console", "alice")


async def test_sync_now_goes_through_the_events_topic_keyed_by_host(console: Any) -> None:
    client, producer, _ = console
    auth = {"Authorization": "Bearer op-tok"}
    r = await client.post("/api/v1/hosts/dcim.device:12/sync", headers=auth)
    assert r.status == 202
    job_id = (await r.json())["job_id"]
    topic, key, req = next((t, k, decode(v)) for t, k, v in producer.sent if t == CFG.kafka.topics.events)
    assert (topic, key, req.job_id, req.reason) == (CFG.kafka.topics.events, "dcim.device:12", job_id, "console")
    [job] = sent(producer, JobRecord)
    assert (job.job_kind, job.status, job.user) == ("host_sync", "pending", "alice")
    assert (await client.post("/api/v1/hosts/not-a-key/sync", headers=auth)).status == 400


async def test_adoption_is_a_request_to_the_control_loop_and_a_job_naming_the_user(console: Any) -> None:
    client, producer, _ = console
    auth = {"Authorization": "Bearer op-tok"}
    r = await client.post("/api/v1/adoption", json={"host_keys": ["dcim.device:12", "dcim.device:12"]}, headers=auth)
    assert r.status == 202
    [req] = sent(producer, AdoptRequest)
    assert (req.user, req.trigger, req.host_keys) == ("alice", "console", ["dcim.device:12"])
    assert [t for t, k, _ in producer.sent if k == "adopt"] == [CFG.kafka.topics.control]
    [job] = sent(producer, JobRecord)
    assert (job.job_id, job.job_kind, job.status, job.user) == (req.job_id, "adopt", "pending", "alice")
    r = await client.post("/api/v1/adoption", json={"host_keys": "all"}, headers=auth)
    assert r.status == 202 and sent(producer, AdoptRequest)[-1].host_keys == []
    for bad in ({}, {"host_keys": []}, {"host_keys": "some"}, {"host_keys": ["x"]}, {"host_keys": "all", "extra": 1}):
        assert (await client.post("/api/v1/adoption", json=bad, headers=auth)).status == 400, bad
    csrf = await sign_in(client, "op-tok")
    r = await client.post("/adoption", data={"csrf": csrf}, allow_redirects=False)
    assert r.status == 303 and "Not%20done" in r.headers["Location"], "nothing chosen: nothing requested"
    r = await client.post("/adoption", data={"csrf": csrf, "all": "1"}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].startswith(f"/jobs/{sent(producer, AdoptRequest)[-1].job_id}")
    assert len(sent(producer, AdoptRequest)) == 3
    # Without NetBox and Zabbix the plan cannot be computed: said, not a crash.
    assert (await client.get("/api/v1/adoption", headers=auth)).status == 503
    page = await (await client.get("/adoption")).text()
    assert 'id="adoption-error"' in page and "no NetBox and Zabbix connection" in page


async def test_a_requested_job_is_shown_at_once_not_after_kafka_brings_it_back(console: Any) -> None:
    """The page an action redirects to is the job's: it must not say "not found" while the console's
    follower has yet to read the record back (here nothing feeds the state but the actions)."""
    client, _, _ = console
    auth = {"Authorization": "Bearer op-tok"}
    for path, body in (("/api/v1/reconcile", {}), ("/api/v1/adoption", {"host_keys": "all"})):
        job_id = (await (await client.post(path, json=body, headers=auth)).json())["job_id"]
        r = await client.get(f"/api/v1/jobs/{job_id}", headers=auth)
        assert r.status == 200 and (await r.json())["status"] == "pending", path
    csrf = await sign_in(client, "op-tok")
    r = await client.post("/reconcile", data={"csrf": csrf})
    assert r.status == 200 and 'id="summary"' in await r.text(), "the redirect lands on the job's page"


async def test_hosts_and_dead_letters_read_and_retry(console: Any) -> None:
    client, producer, state = console
    state.apply_statuses(
        [
            _Rec(HostStatus(host_key="dcim.device:1", host="sw1", result="failed", error="no template")),
            _Rec(HostStatus(host_key="dcim.device:2", host="sw2", result="in_sync")),
        ]
    )
    letter = DeadLetter(
        host_key="dcim.device:1",
        error="no template",
        attempts=1,
        topic="t",
        partition=3,
        offset=9,
        original='{"kind": "sync_request"}',
    )
    state.apply_letters([_Rec(letter, partition=3, offset=9)])
    auth = {"Authorization": "Bearer view-tok"}
    body = await (await client.get("/api/v1/hosts?result=failed", headers=auth)).json()
    assert [h["host"] for h in body["hosts"]] == ["sw1"] and body["hosts"][0]["error"] == "no template"
    assert (await client.get("/api/v1/hosts/dcim.device:9", headers=auth)).status == 404
    assert (await client.get("/api/v1/hosts?result=green", headers=auth)).status == 400
    letters = (await (await client.get("/api/v1/dead-letters", headers=auth)).json())["dead_letters"]
    assert [(d["host_key"], d["partition"], d["offset"]) for d in letters] == [("dcim.device:1", 3, 9)]
    op = {"Authorization": "Bearer op-tok"}
    r = await client.post("/api/v1/dead-letters/retry", json={"host_keys": ["dcim.device:2"]}, headers=op)
    assert r.status == 404
    r = await client.post("/api/v1/dead-letters/retry", json={}, headers=op)
    assert r.status == 202 and (await r.json())["host_keys"] == ["dcim.device:1"]
    [sync] = sent(producer, SyncRequest)
    assert (sync.host_key, sync.reason) == ("dcim.device:1", "retry")
    await sign_in(client, "view-tok")
    page = await (await client.get("/dead-letters/3/9")).text()
    assert "sync_request" in page and "no template" in page


async def test_kafka_down_is_a_503_and_a_message_not_a_crash(console: Any) -> None:
    client, producer, _ = console
    producer.down = True
    r = await client.post("/api/v1/reconcile", json={}, headers={"Authorization": "Bearer op-tok"})
    assert r.status == 503 and "Kafka is unavailable" in (await r.json())["error"]
    producer.down = False
    csrf = await sign_in(client, "op-tok")
    producer.down = True
    r = await client.post("/reconcile", data={"csrf": csrf}, allow_redirects=False)
    assert r.status == 303 and "Kafka%20is%20unavailable" in r.headers["Location"]


async def test_no_secret_is_rendered(console: Any) -> None:
    client, _, state = console
    secret_change = {"macros": [{"macro": "{$DB_PASS}", "type": 1, "value": "hunter2"}]}
    state.apply_jobs([_Rec(JobRecord(job_id="s", job_kind="reconcile", status="completed", results=secret_change))])
    await sign_in(client, "op-tok")
    pages: list[ClientResponse] = [await client.get(p) for p in ("/jobs", "/jobs/s")]
    pages.append(await client.get("/api/v1/jobs/s", headers={"Authorization": "Bearer op-tok"}))
    for r in pages:
        text = await r.text()
        assert r.status == 200
        for secret in ("hunter2", "op-tok", "view-tok"):
            assert secret not in text


async def test_the_jobs_page_and_api_show_the_change_log_follower_and_when_it_is_behind(console: Any) -> None:
    client, _, state = console
    await sign_in(client, "view-tok")
    page = await (await client.get("/jobs")).text()
    assert 'id="changelog"' in page and "no follower has read it yet" in page
    body = await (await client.get("/api/v1/changelog", headers={"Authorization": "Bearer view-tok"})).json()
    assert body == {"enabled": True, "cursor": None, "read_ago_s": None, "stale": True}
    fresh = ChangelogCursor(top=4321, holes={4300: 1.0}, emitted_total=17, leader="consumer-0:7", polled_at=utc_now())
    state.apply_cursors([_Rec(fresh)])
    page = await (await client.get("/jobs")).text()
    assert "#4321" in page and "consumer-0:7" in page and "1 change ids awaited" in page and "Behind" not in page
    body = await (await client.get("/api/v1/changelog", headers={"Authorization": "Bearer view-tok"})).json()
    assert body["cursor"]["top"] == 4321 and body["stale"] is False and body["read_ago_s"] < 5
    old = ChangelogCursor(top=4321, leader="consumer-0:7", polled_at="2026-01-01T00:00:00+00:00")
    state.apply_cursors([_Rec(old)])
    page = await (await client.get("/jobs")).text()
    assert "Behind" in page and 'class="panel warn"' in page


async def _console(aiohttp_client: Any, **access: Any) -> TestClient[Any, Any]:
    cfg = parse_config(json.dumps({"console": {"access": access}}), ENV)  # JSON is YAML
    return await aiohttp_client(make_app(cfg, RecordingProducer(), None, ConsoleState(cfg, follow=False)))  # type: ignore[arg-type]


async def test_every_answer_carries_the_security_headers_and_pages_need_no_inline_style(console: Any) -> None:
    client, _, _ = console
    answers = [
        await client.get("/login"),
        await client.get("/hosts", allow_redirects=False),  # a redirect to sign in
        await client.get("/api/v1/jobs"),  # a 401
        await client.post("/login", data={"token": "op-tok"}, allow_redirects=False),
    ]
    for r in answers:
        csp = r.headers.get("Content-Security-Policy", "")
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "style-src 'self'" in csp, r
        assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in r.headers  # plain HTTP
    await sign_in(client, "op-tok")
    for path in ("/jobs", "/hosts", "/dead-letters", "/adoption", "/reconcile", "/login"):
        r = await client.get(path)
        page = await r.text()
        assert r.status == 200 and r.url.path == path, path
        assert "<style" not in page and "style=" not in page and "<script" not in page, path
        assert '<link rel="stylesheet" href="/static/console.css">' in page, path
    css = await client.get("/static/console.css")
    assert css.status == 200 and css.content_type == "text/css" and ".badge{" in await css.text()


async def test_sign_in_attempts_over_the_rate_are_429_even_with_the_right_token(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    client = await _console(aiohttp_client, rate_limit="2/minute")
    for _ in range(2):
        assert (await client.post("/login", data={"token": "guess"}, allow_redirects=False)).status == 401
    r = await client.post("/login", data={"token": "op-tok"}, allow_redirects=False)
    assert r.status == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert "console.access.rate_limit is 2/minute" in (await r.json())["error"]
    assert "Content-Security-Policy" in r.headers
    assert (await client.get("/login")).status == 200  # only attempts count


async def test_outside_the_allow_list_the_console_is_403_but_health_is_open(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    client = await _console(aiohttp_client, allow_from=["192.0.2.0/24"])
    assert (await client.get("/login")).status == 403
    assert (await client.get("/api/v1/jobs", headers={"Authorization": "Bearer op-tok"})).status == 403
    assert (await client.get("/healthz")).status == 200


async def test_behind_a_trusted_https_proxy_the_session_cookie_is_secure_and_hsts_is_sent(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    client = await _console(aiohttp_client, trusted_proxies=["127.0.0.1"])
    r = await client.post(
        "/login", data={"token": "op-tok"}, headers={"X-Forwarded-Proto": "https"}, allow_redirects=False
    )
    assert r.status == 303 and "Secure" in r.headers["Set-Cookie"]
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    plain = await client.post("/login", data={"token": "op-tok"}, allow_redirects=False)
    assert "Secure" not in plain.headers["Set-Cookie"]
    # From a peer that is not a trusted proxy the header is only a claim.
    untrusted = await _console(aiohttp_client)
    r = await untrusted.post(
        "/login", data={"token": "op-tok"}, headers={"X-Forwarded-Proto": "https"}, allow_redirects=False
    )
    assert "Secure" not in r.headers["Set-Cookie"]
