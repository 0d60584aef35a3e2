"""The console's pure parts: tokens and sessions, CSRF, form checks, filters and paging, the jobs
view's bounds, job summaries, host statuses and the Difference view (secrets masked)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nbzx.console.auth import Tokens
from nbzx.console.forms import BadInput, host_filters, job_filters, netbox_filter, reconcile_request
from nbzx.console.views import difference_rows, job_summary, paginate, prune_jobs, query_hosts, query_jobs
from nbzx.core.model import IPMI, JMX, ActualHost, ActualMacro, DesiredHost, Interface, Macro, Plan
from nbzx.core.planner import SyncResult
from nbzx.core.policy import Decision, KeyState
from nbzx.core.redact import MASK
from nbzx.core.status import host_result, host_status, host_sync_record
from nbzx.schemas.messages import HostStatus, JobRecord

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


# ---- tokens, sessions, CSRF ----


def test_a_token_signs_in_as_its_user_and_role() -> None:
    tokens = Tokens("victor:v-secret, bare-viewer", "alice:a-secret")
    assert tokens.identify("v-secret").user == "victor"  # type: ignore[union-attr]
    assert tokens.identify("v-secret").role == "viewer"  # type: ignore[union-attr]
    assert tokens.identify("bare-viewer").user == "viewer"  # type: ignore[union-attr]
    alice = tokens.identify("a-secret")
    assert alice is not None and alice.role == "operator" and alice.can_act
    assert tokens.identify("wrong") is None
    assert tokens.identify("") is None


def test_no_tokens_configured_lets_nobody_in() -> None:
    tokens = Tokens("", "")
    assert not tokens
    assert tokens.identify("") is None
    assert tokens.session("", 60) is None


def test_a_session_cookie_verifies_until_it_expires() -> None:
    tokens = Tokens("", "alice:a-secret")
    cookie = tokens.session("a-secret", ttl_s=60, now=1000.0)
    assert cookie is not None
    who = tokens.verify(cookie, now=1030.0)
    assert who is not None and who.user == "alice" and who.role == "operator"
    assert tokens.verify(cookie, now=1061.0) is None


def test_a_forged_or_edited_session_cookie_is_refused() -> None:
    tokens = Tokens("victor:v-secret", "alice:a-secret")
    viewer = tokens.session("v-secret", 60)
    assert viewer is not None
    payload, _, sig = viewer.partition(".")
    import base64
    import json

    body = json.loads(base64.urlsafe_b64decode(payload))
    body["r"] = "operator"  # a viewer making themselves an operator
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode()
    assert tokens.verify(f"{forged}.{sig}") is None
    assert tokens.verify("garbage") is None
    assert Tokens("victor:other", "alice:a-secret").verify(viewer) is None  # signed with other tokens


def test_removing_a_token_ends_its_sessions() -> None:
    before = Tokens("victor:v-secret", "alice:a-secret")
    cookie = before.session("a-secret", 60)
    assert cookie is not None
    assert Tokens("victor:v-secret", "alice:a-secret").verify(cookie) is not None
    assert Tokens("victor:v-secret", "bob:b-secret").verify(cookie) is None


def test_csrf_token_belongs_to_its_session() -> None:
    tokens = Tokens("victor:v-secret", "alice:a-secret")
    a, b = tokens.session("a-secret", 60), tokens.session("v-secret", 60)
    assert a is not None and b is not None
    assert tokens.csrf_ok(a, tokens.csrf(a))
    assert not tokens.csrf_ok(a, tokens.csrf(b))
    assert not tokens.csrf_ok(a, "")
    assert not tokens.csrf_ok("", tokens.csrf(""))


# ---- forms ----


def test_reconcile_form_now_at_a_time_and_every_n_minutes() -> None:
    now = T0
    assert reconcile_request({}, now) == {
        "dry_run": False,
        "object_types": [],
        "filter": {},
        "scheduled_for": None,
        "interval": None,
        "servers": [],
    }
    one = reconcile_request({"servers": "new"}, now, servers=["old", "new"])
    assert one["servers"] == ["new"]
    with pytest.raises(BadInput, match="servers must be a list of Zabbix servers: old, new"):
        reconcile_request({"servers": ["moon"]}, now, servers=["old", "new"])
    later = reconcile_request({"scheduled_for": "2026-11-30T08:00", "interval": "60", "dry_run": "1"}, now)
    assert later["scheduled_for"] == "2026-11-30T08:00:00+00:00"
    assert later["interval"] == 60 and later["dry_run"] is True
    every = reconcile_request({"interval": 15}, now)  # no time: the first run is now
    assert every["scheduled_for"] == now.isoformat() and every["interval"] == 15


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"interval": "7"}, "interval must be one of"),
        ({"interval": "often"}, "number of minutes"),
        ({"scheduled_for": "2026-11-29T11:00"}, "in the future"),
        ({"scheduled_for": "tomorrow"}, "not a date"),
        ({"object_types": ["dcim.site"]}, "object_types"),
        ({"filter": ["site=lab"]}, "filter must be an object"),
    ],
)
def test_reconcile_form_refuses_what_it_cannot_run(body: dict[str, object], says: str) -> None:
    with pytest.raises(BadInput, match=says):
        reconcile_request(body, T0)


def test_listing_filters_refuse_unknown_values() -> None:
    with pytest.raises(BadInput, match="kind must be"):
        job_filters({"kind": "nope"})
    with pytest.raises(BadInput, match="status must be"):
        job_filters({"status": "done"})
    with pytest.raises(BadInput, match="page"):
        job_filters({"page": "0"})
    with pytest.raises(BadInput, match="result must be"):
        host_filters({"result": "green"})
    assert job_filters({"since": "2026-11-29T10:00"})["since"] == datetime(2026, 11, 29, 10, tzinfo=UTC)


# ---- listings ----


def _job(i: int, kind: str = "reconcile", status: str = "completed", age_h: float = 0.0) -> JobRecord:
    created = (T0 - timedelta(hours=age_h, seconds=i)).isoformat()
    return JobRecord(job_id=f"j{i}", job_kind=kind, status=status, created=created)  # type: ignore[arg-type]


def test_jobs_newest_first_filtered_and_paged() -> None:
    jobs = [
        _job(i, kind="dry_run" if i % 3 == 0 else "reconcile", status="failed" if i % 2 else "completed")
        for i in range(10)
    ]
    page = query_jobs(jobs, per_page=4)
    assert [j.job_id for j in page.items] == ["j0", "j1", "j2", "j3"]
    assert (page.total, page.pages) == (10, 3)
    assert [j.job_id for j in query_jobs(jobs, kind="dry_run", status="completed").items] == ["j0", "j6"]
    since = T0 - timedelta(seconds=2)
    assert [j.job_id for j in query_jobs(jobs, since=since).items] == ["j0", "j1", "j2"]
    until = T0 - timedelta(seconds=8)
    assert [j.job_id for j in query_jobs(jobs, until=until).items] == ["j8", "j9"]


def test_a_page_past_the_end_shows_the_last_page() -> None:
    page = paginate(list(range(7)), page=9, per_page=3)
    assert (page.items, page.page, page.pages) == ([6], 3, 3)
    assert paginate([], 1, 3).pages == 1


def test_hosts_by_result_and_by_name_or_key() -> None:
    hosts = {
        f"dcim.device:{i}": HostStatus(
            host_key=f"dcim.device:{i}",
            host=f"Core-SW-{i}",
            result="failed" if i in (2, 5) else "in_sync",
            synced_at=(T0 + timedelta(seconds=i)).isoformat(),
        )
        for i in range(1, 8)
    }
    assert [h.host_key for h in query_hosts(hosts, result="failed").items] == ["dcim.device:5", "dcim.device:2"]
    assert [h.host for h in query_hosts(hosts, q="core-sw-3").items] == ["Core-SW-3"]
    assert [h.host for h in query_hosts(hosts, q="device:7").items] == ["Core-SW-7"]
    assert query_hosts(hosts, per_page=2).items[0].host == "Core-SW-7"  # newest sync first


def test_old_and_surplus_finished_jobs_age_out_but_never_pending_ones() -> None:
    jobs = {j.job_id: j for j in [_job(i) for i in range(6)]}
    jobs["j99"] = _job(99, age_h=24 * 40)
    jobs["j100"] = _job(100, status="scheduled", age_h=24 * 90)
    drop = set(prune_jobs(jobs, max_count=5, max_age_s=30 * 86400, now=T0))
    assert "j99" in drop and "j100" not in drop
    assert drop == {"j99", "j4", "j5"}  # 5 kept: the scheduled one and the 4 newest finished


def test_job_summaries_say_what_happened() -> None:
    done = JobRecord(
        job_id="a",
        job_kind="reconcile",
        status="completed",
        results={"in_sync": 9, "create": 1, "update": 2, "delete": 0, "conflicts": 0, "errors": 1},
    )
    assert job_summary(done) == "9 in sync, 1 to create, 2 to update, 0 to delete, 0 conflicts, 1 errors"
    running = JobRecord(
        job_id="b",
        job_kind="reconcile",
        status="running",
        results={"progress": {"read": 5, "planned": 2, "emitted": 1}},
    )
    assert job_summary(running) == "read 5, planned 2, emitted 1"
    failed = JobRecord(job_id="c", job_kind="reconcile", status="failed", error="too many deletes\nmore")
    assert job_summary(failed) == "too many deletes"
    every = JobRecord(job_id="d", job_kind="reconcile", status="scheduled", scheduled_for="T", interval=60)
    assert job_summary(every) == "runs at T, then every 60 min"


# ---- host statuses ----


@pytest.mark.parametrize(
    ("action", "result", "expected"),
    [
        ("noop", "skipped", "in_sync"),
        ("create", "ok", "changed"),
        ("update", "ok", "changed"),
        ("skip", "skipped", "skipped"),
        ("conflict", "conflict", "conflict"),
        ("create", "error", "failed"),
        ("plan", "error", "failed"),
    ],
)
def test_host_result_words(action: str, result: str, expected: str) -> None:
    assert host_result(SyncResult(host_key="dcim.device:1", action=action, result=result)) == expected


def test_a_parked_key_shows_as_failed_and_retrying_with_its_attempts() -> None:
    r = SyncResult(host_key="dcim.device:1", action="update", result="error", error="Zabbix down", transient=True)
    state = KeyState(host_key="dcim.device:1", attempts=3, first_failed_at=0.0, next_at=1.0)
    st = host_status(r, Decision(host_key="dcim.device:1", outcome="retry", state=state), event_at=0.0, job_id="j")
    assert (st.result, st.retrying, st.attempts, st.error, st.job_id) == ("failed", True, 3, "Zabbix down", "j")
    done = host_status(
        SyncResult(host_key="dcim.device:1", action="update", result="ok", changed=["name"], host="sw1"),
        Decision(host_key="dcim.device:1", outcome="done"),
    )
    assert (done.result, done.retrying, done.changed, done.host, done.event_at) == (
        "changed",
        False,
        ["name"],
        "sw1",
        None,
    )


def test_a_console_sync_job_ends_with_the_hosts_result() -> None:
    failed = HostStatus(host_key="dcim.device:1", result="failed", error="no template", action="create")
    record = host_sync_record("j1", "alice", T0.isoformat(), failed, dead_lettered=True)
    assert (record.status, record.user, record.error, record.created) == (
        "failed",
        "alice",
        "no template",
        T0.isoformat(),
    )
    assert record.results["dead_lettered"] is True and record.duration_s is not None
    retrying = HostStatus(host_key="dcim.device:1", result="failed", retrying=True, attempts=2)
    assert host_sync_record("j1", "alice", T0.isoformat(), retrying, False).status == "running"
    ok = HostStatus(host_key="dcim.device:1", result="changed")
    assert host_sync_record("j1", "alice", T0.isoformat(), ok, False).status == "completed"


# ---- the Difference view ----


def _desired(**kw: object) -> DesiredHost:
    base: dict[str, object] = {
        "host_key": "dcim.device:1",
        "host": "sw1",
        "name": "sw1",
        "status": 0,
        "groups": ("NetBox/Lab",),
        "templates": ("ICMP Ping",),
        "interfaces": (Interface(type=2, ip="10.0.0.1", port="161", details=(("community", "public"),)),),
        "tags": (("netbox:key", "dcim.device:1"),),
        "macros": (Macro(macro="{$PASS}", value="hunter2", secret=True), Macro(macro="{$SITE}", value="lab")),
    }
    return DesiredHost(**{**base, **kw})  # type: ignore[arg-type]


def _actual(**kw: object) -> ActualHost:
    base: dict[str, object] = {
        "hostid": "10",
        "host": "sw1",
        "name": "sw1",
        "status": 0,
        "groups": ("NetBox/Lab",),
        "templates": (),
        "interfaces": (),
        "tags": (("netbox:key", "dcim.device:1"),),
        "macros": (ActualMacro(hostmacroid="1", macro="{$PASS}", value=None, secret=True),),
        "inventory": {"serialno_a": "X1", "alias": ""},
    }
    return ActualHost(**{**base, **kw})  # type: ignore[arg-type]


def test_difference_marks_what_the_planner_would_write_and_masks_secrets() -> None:
    plan = Plan(host_key="dcim.device:1", action="update", hostid="10", changes={"templates": ["ICMP Ping"]})
    rows = {r.field: r for r in difference_rows(_desired(), _actual(), plan)}
    assert [f for f, r in rows.items() if r.differs] == ["templates"]
    assert rows["templates"].netbox == "ICMP Ping" and rows["templates"].zabbix == ""
    assert "hunter2" not in rows["macros"].netbox and f"{{$PASS}}={MASK}" in rows["macros"].netbox
    assert "public" not in rows["interfaces"].netbox
    assert rows["inventory"].zabbix == "serialno_a=X1"  # empty inventory fields left out
    assert rows["status"].netbox == "enabled"


def test_difference_of_a_host_to_create_differs_wherever_netbox_wants_something() -> None:
    plan = Plan(host_key="dcim.device:1", action="create", changes={"host": "sw1"})
    rows = {r.field: r for r in difference_rows(_desired(), None, plan)}
    assert all(r.zabbix == "" for r in rows.values())
    assert rows["templates"].differs and rows["macros"].differs and rows["status"].differs
    assert not rows["proxy"].differs and not rows["inventory"].differs  # empty on both sides


def test_netbox_filter_text() -> None:
    assert netbox_filter("site=lab tag=core tag=edge") == {"site": "lab", "tag": ["core", "edge"]}
    assert netbox_filter("") == {}
    with pytest.raises(BadInput, match="name=value"):
        netbox_filter("site")


def test_difference_names_every_interface_type() -> None:
    ifaces = (Interface(type=IPMI, ip="10.9.0.1", port="623"), Interface(type=JMX, ip="10.0.0.1", port="9010"))
    plan = Plan(host_key="dcim.device:1", action="create", changes={"interfaces": []})
    [row] = [r for r in difference_rows(_desired(interfaces=ifaces), None, plan) if r.field == "interfaces"]
    assert row.netbox == "IPMI 10.9.0.1:623 main\nJMX 10.0.0.1:9010 main"
