"""The change-log follower on the real stack: no webhook at all (as if the receiver were stopped or
the event rule disabled), NetBox changes still reach Zabbix 7.0 through NetBox's change log; two
consumer processes follow it with one leader, and the leader killed mid-stream leaves no window skipped
and none emitted twice (counted on the events and changelog topics, read as committed)."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from nbzx.common.config import Config
from nbzx.common.kafka import create_topics, new_consumer, read_to_end
from nbzx.schemas.messages import ChangeEvent, ChangelogCursor, decode
from tests.conftest import ensure_stack, make_config, zabbix_server_for
from tests.e2e.pipeline import (
    ConsumerProcess,
    Pipeline,
    new_name,
    pipeline_config_doc,
    wait_until,
    write_config,
)


@pytest.fixture
async def quiet_pipeline(netbox_api: Any, netbox_objects: Any, tmp_path: Path) -> Any:
    """A pipeline into Zabbix 7.0 with no receiver and no webhook: only the change log carries changes."""
    server = zabbix_server_for("7.0")
    ensure_stack("kafka", server.service, "netbox")
    cfg = make_config(zabbix={"url": server.url}, changelog={"enabled": True})
    await create_topics(cfg)
    p = Pipeline(cfg, netbox_api, server.api, netbox_objects("clog"), tmp_path, server.service)
    yield p
    for c in p.consumers:
        c.stop()
    ids = [d.id for d in p.made]
    existing = [d.id for d in await asyncio.to_thread(lambda: list(netbox_api.dcim.devices.filter(id=ids)))]
    if existing:
        await asyncio.to_thread(netbox_api.dcim.devices.delete, existing)


async def leading(consumers: list[ConsumerProcess], timeout_s: float = 60) -> ConsumerProcess:
    """The one consumer process that leads the follower (fails if two ever do)."""

    def one() -> ConsumerProcess | None:
        leaders = [c for c in consumers if c.proc.poll() is None and _metric(c, "nbzx_changelog_leader") == 1]
        assert len(leaders) <= 1, "two followers lead at once"
        return leaders[0] if leaders else None

    found: ConsumerProcess = await wait_until(one, timeout_s, "a change-log leader")
    return found


def _metric(c: ConsumerProcess, name: str, **labels: str) -> float:
    try:
        return c.metric(name, **labels)
    except OSError:  # not serving yet
        return 0.0


async def committed(cfg: Config, topic: str) -> list[Any]:
    """Every message on `topic` that a read_committed reader sees."""
    consumer = new_consumer(cfg, isolation_level="read_committed")
    await consumer.start()
    try:
        return [decode(r.value) for r in await read_to_end(consumer, topic, timeout_s=30)]
    finally:
        await consumer.stop()


async def test_changes_reach_zabbix_through_the_change_log_alone(quiet_pipeline: Pipeline) -> None:
    p = quiet_pipeline
    c = p.consumer()
    await leading([c])
    # create (with an interface and a primary IP: several changes, one host)
    a, b = p.devices([new_name("clog"), new_name("clog")], with_ip=True)
    keys = [f"dcim.device:{a.id}", f"dcim.device:{b.id}"]
    await p.converged(keys, timeout_s=30)
    # update
    a.update({"name": f"{a.name}-renamed"})
    await p.converged(keys, check=lambda k, h: k != keys[0] or h["host"] == f"{a.name}", timeout_s=30)
    # a dependency: the site's new name reaches every host's group through the fan-out
    site = p.base["site"]
    site.update({"name": f"{site.name}-moved"})

    def group_renamed() -> bool:
        rows = p.zapi.host.get(hostids=[h[0]["hostid"] for h in p.hosts(keys).values()], selectHostGroups=["name"])
        return all(any(g["name"] == f"NetBox/{site.name}" for g in r["hostgroups"]) for r in rows)

    await wait_until(group_renamed, 30, "the site's new name in both hosts' groups")
    # delete (soft: the host is disabled and tagged for removal)
    b.delete()

    def archived() -> bool:
        hosts = p.hosts([keys[1]]).get(keys[1], [])
        return bool(hosts) and hosts[0]["status"] == "1"

    await wait_until(archived, 30, "the deleted device's host disabled")
    assert _metric(c, "nbzx_change_events_total", source="changelog") > 0
    assert _metric(c, "nbzx_change_events_total", source="webhook") == 0
    assert _metric(c, "nbzx_changelog_changes_total", outcome="caught_up") > 0
    assert _metric(c, "nbzx_dlq_total") == 0


async def test_two_followers_one_leads_and_a_leader_killed_mid_stream_skips_and_repeats_nothing(
    quiet_pipeline: Pipeline,
) -> None:
    p = quiet_pipeline
    consumers = [p.consumer(), p.consumer()]
    first = await leading(consumers)
    devs = p.devices([new_name("clog") for _ in range(6)])
    start_id = int(next(iter(p.nb.core.object_changes.filter(ordering="-id", limit=1))).id)
    done = threading.Event()

    def stream() -> None:  # 60 updates, one at a time, ~6 s
        for i in range(60):
            d = devs[i % len(devs)]
            d.update({"description": f"change {i}"})
            time.sleep(0.1)
        done.set()

    writer = threading.Thread(target=stream)
    writer.start()
    await asyncio.sleep(2.5)
    first.kill9()
    consumers.append(p.consumer())  # the killed one comes back, as its Deployment would bring it
    second = await leading(consumers)
    assert second is not first
    await asyncio.to_thread(writer.join)
    ours = {d.id for d in devs}
    changes = [
        int(r.id)
        for r in p.nb.core.object_changes.filter(id__gt=start_id, changed_object_type="dcim.device")
        if r.changed_object_id in ours
    ]
    assert len(changes) >= 60

    def cursor_past_the_stream() -> bool:
        return _metric(second, "nbzx_changelog_cursor") >= max(changes)

    await wait_until(cursor_past_the_stream, 30, "the new leader's cursor past the last change")
    events = [m for m in await committed(p.cfg, p.cfg.kafka.topics.events) if isinstance(m, ChangeEvent)]
    emitted = Counter(ev.change_id for ev in events if ev.change_id in set(changes))
    assert set(emitted) == set(changes), f"skipped: {sorted(set(changes) - set(emitted))}"
    assert max(emitted.values()) == 1, f"emitted twice: {[i for i, n in emitted.items() if n > 1]}"
    cursors = [m for m in await committed(p.cfg, p.cfg.kafka.topics.changelog) if isinstance(m, ChangelogCursor)]
    for before, after in itertools.pairwise(cursors):
        assert after.window_from == before.top, f"window {after.window_from}..{after.top} after {before.top}"
    assert cursors[0].leader != cursors[-1].leader  # the lead changed hands mid-stream
    keys = [f"dcim.device:{d.id}" for d in devs]
    await p.converged(keys, check=lambda k, h: True, timeout_s=30)


async def test_a_token_that_cannot_read_the_change_log_is_told_once_and_the_consumer_goes_on(
    quiet_pipeline: Pipeline, netbox_user: Any
) -> None:
    p = quiet_pipeline
    _, token = await asyncio.to_thread(netbox_user, [("view", ["dcim.device", "dcim.site"])])
    doc = pipeline_config_doc(p.cfg)
    c = ConsumerProcess(write_config(doc, p.tmp / "consumer-noperm.yaml"), p.tmp / "noperm.log", netbox_token=token)
    p.consumers.append(c)

    def refused() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in c.log_path.read_text().splitlines() if line.startswith("{")]
        return [e for e in lines if e.get("event") == "changelog_not_permitted"]

    [line] = await wait_until(refused, 30, "the follower's refusal in the log")
    assert "core.view_objectchange" in line["error"] and "403" in line["error"]
    await wait_until(lambda: _metric(c, "nbzx_changelog_leader") == 0 and _ready(c), 30, "the consumer ready")
    await asyncio.sleep(2)
    assert len(refused()) == 1, "said once, not retried in a loop"


def _ready(c: ConsumerProcess) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{c.port}/readyz", timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


async def test_with_webhooks_working_the_follower_does_not_send_their_changes_again(pipeline: Pipeline) -> None:
    p = pipeline
    p.cfg.changelog.enabled = True
    c = p.consumer()
    await leading([c])
    start_id = int(next(iter(p.nb.core.object_changes.filter(ordering="-id", limit=1))).id)
    devs = await asyncio.to_thread(p.devices, [new_name("clog") for _ in range(3)])
    keys = [f"dcim.device:{d.id}" for d in devs]
    await p.converged(keys, timeout_s=30)
    for d in devs:
        await asyncio.to_thread(d.update, {"description": "updated"})
        await asyncio.sleep(1.5)  # NetBox delivers a webhook in milliseconds, under load in over a second
    ours = {d.id for d in devs}
    changes = [
        int(r.id)
        for r in p.nb.core.object_changes.filter(id__gt=start_id, changed_object_type="dcim.device")
        if r.changed_object_id in ours
    ]
    assert len(changes) == 6
    await wait_until(lambda: _metric(c, "nbzx_changelog_cursor") >= max(changes), 30, "the cursor past our changes")

    def count(outcome: str) -> float:
        return _metric(c, "nbzx_changelog_changes_total", outcome=outcome)

    # Every change the follower read is accounted for once; those NetBox delivered are not sent again
    # (one whose webhook is still on its way when the follower reads it is, harmlessly: a no-op sync;
    # which ones that is depends on NetBox's queue, so only "some, not none" is certain: CI saw 2 of 6).
    assert count("delivered") >= 1
    assert count("delivered") + count("caught_up") >= len(changes)
    assert _metric(c, "nbzx_change_events_total", source="webhook") >= len(changes)
