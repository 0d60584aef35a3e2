"""The change-log follower: NetBox's object changes as a second source of events (DESIGN §13).

A webhook NetBox gave up on (receiver down past its retries, an event rule disabled for a moment, a
worker restart) would otherwise wait for the next full reconcile. The follower reads
`core/object-changes/` after its cursor every `changelog.poll_s` and emits the `ChangeEvent` each
change's webhook would have made, keyed by host key onto the events topic. A change the webhook
already delivered is skipped when its webhook's event is on the events topic (the leader tails it);
one whose webhook comes later costs one more sync of that key, coalesced with it or a no-op.

Every consumer process runs a follower; one leads. Leadership is the one partition of the compacted
changelog topic, handed out by a Kafka consumer group, and the emitted events and the cursor that
closes their window go in one Kafka transaction under one transactional id: a restarted or second
leader fences the old one and starts from the last committed cursor, so no window is skipped or
emitted twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import time
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from prometheus_client import Counter, Gauge

from nbzx.common.config import Config
from nbzx.common.kafka import PRODUCER_MAX_REQUEST_BYTES, client_kwargs, new_consumer, topic_partitions
from nbzx.common.logging import get_logger
from nbzx.common.wait import sleep_or_stop
from nbzx.core.changelog import change_event, ip_assignment, step
from nbzx.core.webhook import WebhookError, ignored
from nbzx.engine.netbox import NetBox, NetBoxError
from nbzx.schemas.messages import ChangeEvent, ChangelogCursor, decode, encode, utc_now

log = get_logger(component="changelog")

PERMISSION = "core.view_objectchange"
CURSOR_KEY = b"cursor"
CHANGES = Counter("nbzx_changelog_changes_total", "NetBox object changes read from the change log", ["outcome"])
LEADING = Gauge("nbzx_changelog_leader", "1 while this process leads the change-log follower")
TOP = Gauge("nbzx_changelog_cursor", "Id of the newest NetBox object change the follower has read")
HOLES = Gauge("nbzx_changelog_holes", "Change ids below the cursor that NetBox has not shown yet")
NEWEST = Gauge("nbzx_changelog_newest_change_timestamp", "NetBox's time of the newest change read (epoch s)")
POLLED = Gauge("nbzx_changelog_last_poll_timestamp", "When the leader last read the change log (epoch s)")


class Delivered:
    """The NetBox changes whose webhooks are on the events topic already, by (request id, object type,
    object id), for the last `KEEP_S` seconds: read from the topic's end while the follower leads, so a
    change NetBox did deliver is not sent a second time."""

    KEEP_S = 600.0

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.seen: dict[tuple[str, str, int], float] = {}  # oldest first
        self._task: asyncio.Task[None] | None = None

    def has(self, ev: ChangeEvent) -> bool:
        return ev.request_id is not None and (ev.request_id, ev.object_type, ev.object_id) in self.seen

    def add(self, ev: ChangeEvent, now: float) -> None:
        if ev.source == "webhook" and ev.request_id:
            self.seen[(ev.request_id, ev.object_type, ev.object_id)] = now
        while self.seen:
            oldest = next(iter(self.seen))
            if now - self.seen[oldest] <= self.KEEP_S:
                break
            del self.seen[oldest]

    def start(self) -> None:
        self._task = asyncio.create_task(self._tail())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self.seen.clear()

    async def _tail(self) -> None:
        topic = self.cfg.kafka.topics.events
        while True:
            consumer = new_consumer(self.cfg, client_id=f"{self.cfg.kafka.client_id}-changelog-tail")
            try:
                await consumer.start()
                tps = await topic_partitions(consumer, topic)
                consumer.assign(tps)
                await consumer.seek_to_end(*tps)
                while True:
                    for recs in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                        now = time.monotonic()
                        for rec in recs:
                            with contextlib.suppress(Exception):  # not ours to judge: the consumers reject it
                                msg = decode(rec.value)
                                if isinstance(msg, ChangeEvent):
                                    self.add(msg, now)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka away: changes are emitted again meanwhile, which is harmless
                log.warning("changelog_tail_restart", error=repr(exc))
                await asyncio.sleep(2)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()


class NotPermitted(Exception):
    """The NetBox token may not read the change log."""


class ChangelogFollower:
    """Leads or waits to lead; while leading, turns NetBox's object changes into events."""

    def __init__(self, cfg: Config, netbox: NetBox, stopping: asyncio.Event) -> None:
        self.cfg, self.netbox, self.stopping = cfg, netbox, stopping
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.topic = cfg.kafka.topics.changelog
        self.tp = TopicPartition(self.topic, 0)
        self.leading = False
        self.cursor: ChangelogCursor | None = None
        self._producer: AIOKafkaProducer | None = None
        self._last_write = 0.0
        self.delivered = Delivered(cfg)

    async def check_permission(self) -> None:
        """Raise `NotPermitted`, naming the permission, when NetBox refuses the change log to our token."""
        try:
            await self.netbox.newest_change_id()
        except NetBoxError as exc:
            if exc.status in (401, 403):
                raise NotPermitted(
                    f"the NetBox token cannot read the change log (NetBox answered {exc.status}): give it "
                    f"the {PERMISSION} permission (object type core | object change, action view), "
                    "or set changelog.enabled: false"
                ) from exc
            raise

    async def run(self) -> None:
        """Until `stopping`: check the permission (once NetBox answers), then join the group and
        follow while leading. Never raises; a refusal is one error log line and the follower stays off."""
        while not self.stopping.is_set():
            try:
                await self.check_permission()
                break
            except NotPermitted as exc:
                log.error("changelog_not_permitted", error=str(exc), permission=PERMISSION)
                return
            except NetBoxError as exc:
                log.warning("changelog_netbox_unavailable", error=str(exc))
                if await sleep_or_stop(5, self.stopping):
                    return
        while not self.stopping.is_set():
            consumer = new_consumer(
                self.cfg,
                group=f"{self.cfg.kafka.group}-changelog",
                client_id=f"{self.cfg.kafka.client_id}-changelog",
                isolation_level="read_committed",
                fetch_max_wait_ms=100,
            )
            try:
                await consumer.start()
                if not await topic_partitions(consumer, self.topic):  # subscribing would wait in silence
                    log.error("changelog_topic_missing", topic=self.topic, fix="nbzx kafka init")
                    await sleep_or_stop(10, self.stopping)
                    continue
                consumer.subscribe([self.topic])
                await self._follow(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka away, fenced, ...: give up leading, join again
                log.warning("changelog_restart", error=repr(exc), leading=self.leading)
                await sleep_or_stop(2, self.stopping)
            finally:
                await self._resign()
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _follow(self, consumer: Any) -> None:
        poll = self.cfg.changelog.poll_s
        while not self.stopping.is_set():
            # Records are ignored (the cursor is read on taking the lead); getmany keeps the membership.
            await consumer.getmany(timeout_ms=int(poll * 1000), max_records=100)
            if self.tp in consumer.assignment():
                if not self.leading:
                    await self._lead(consumer)
                await self.poll_once()
            elif self.leading:
                await self._resign()

    async def _lead(self, consumer: Any) -> None:
        """Take the lead: fence any earlier leader's producer, then read the last committed cursor."""
        producer = AIOKafkaProducer(
            **client_kwargs(self.cfg),
            client_id=f"{self.cfg.kafka.client_id}-changelog",
            transactional_id=f"{self.cfg.kafka.group}-changelog",
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            transaction_timeout_ms=15_000,
            max_request_size=PRODUCER_MAX_REQUEST_BYTES,
        )
        await producer.start()  # init_transactions: an earlier leader's open transaction is aborted
        self._producer = producer
        self.delivered.start()
        self.cursor = await last_cursor(consumer, self.tp) or await self._first_cursor()
        self.leading = True
        LEADING.set(1)
        TOP.set(self.cursor.top)
        log.info("changelog_leading", top=self.cursor.top, holes=len(self.cursor.holes), leader=self.name)

    async def _first_cursor(self) -> ChangelogCursor:
        """No cursor yet: start at the newest change (what came before is the reconcile's to fix)."""
        top = await self.netbox.newest_change_id()
        log.info("changelog_first_start", top=top)
        return ChangelogCursor(top=top, leader=self.name)

    async def _resign(self) -> None:
        await self.delivered.stop()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), 10)
            self._producer = None
        if self.leading:
            log.info("changelog_resigned", leader=self.name)
        self.leading = False
        self.cursor = None
        LEADING.set(0)

    async def poll_once(self) -> int:
        """Read what is new (and the holes), emit it with the new cursor in one transaction; returns how
        many events went out. NetBox away: nothing changes, the next poll tries again."""
        assert self.cursor is not None and self._producer is not None
        cur, settings = self.cursor, self.cfg.changelog
        try:
            rows = await self.netbox.changes_after(cur.top, settings.page)
            filled = await self.netbox.changes(sorted(cur.holes)) if cur.holes else []
        except NetBoxError as exc:
            log.warning("changelog_netbox_unavailable", error=str(exc))
            return 0
        now = time.time()
        nxt = step(cur, (int(r["id"]) for r in rows), (int(r["id"]) for r in filled), now, settings.settle_s)
        by_id = {int(r["id"]): r for r in [*rows, *filled]}
        decided = [await self._event(by_id[i]) for i in nxt.emit]
        events = [ev for ev, _ in decided if ev is not None]
        newest = max((str(r.get("time") or "") for r in rows), default="") or cur.newest_change_at
        cursor = nxt.cursor
        cursor.newest_change_at, cursor.polled_at, cursor.leader = newest, utc_now(), self.name
        if nxt.gave_up:
            CHANGES.labels("gave_up").inc(len(nxt.gave_up))
            log.warning("changelog_holes_given_up", ids=nxt.gave_up[:20], count=len(nxt.gave_up))
        quiet = not nxt.emit and cursor.holes == cur.holes and not nxt.gave_up
        if quiet and now - self._last_write < settings.heartbeat_s:
            POLLED.set(now)
            return 0
        await self._commit(events, cursor)
        self.cursor, self._last_write = cursor, now
        for outcome, n in collections.Counter(outcome for _, outcome in decided).items():
            CHANGES.labels(outcome).inc(n)
        TOP.set(cursor.top)
        HOLES.set(len(cursor.holes))
        POLLED.set(now)
        if newest:
            with contextlib.suppress(ValueError):
                NEWEST.set(datetime.fromisoformat(newest).timestamp())
        if events:
            log.info("changelog_caught_up", events=len(events), window=[cur.top, cursor.top], holes=len(cursor.holes))
        return len(events)

    async def _event(self, change: dict[str, Any]) -> tuple[ChangeEvent | None, str]:
        """The event of one change and "caught_up", or None and why none is needed: "delivered" (its
        webhook's event is on the topic already) or "ignored" (not a type we follow, an update of
        write-back's own fields, a row that is not an object change)."""
        if change.get("changed_object_type") not in self.cfg.receiver.object_types:
            return None, "ignored"
        owner = None
        if assigned := ip_assignment(change):
            owner = await self._owner(*assigned)
        try:
            ev = change_event(change, owner, vc_as_one_host=self.cfg.receiver.virtual_chassis_as_one_host)
        except WebhookError as exc:
            log.warning("changelog_change_unreadable", change_id=change.get("id"), error=exc.reason)
            return None, "ignored"
        if self.delivered.has(ev):
            return None, "delivered"
        if ignored(ev, self.cfg.receiver.object_types, self.cfg.netbox.write_back.own_fields):
            return None, "ignored"
        return ev, "caught_up"

    async def _owner(self, content_type_id: int, object_id: int) -> str | None:
        try:
            return await self.netbox.assignment_owner(content_type_id, object_id)
        except NetBoxError:  # the interface is gone already: the IP's own key is synced instead
            return None

    async def _commit(self, events: list[ChangeEvent], cursor: ChangelogCursor) -> None:
        assert self._producer is not None
        async with self._producer.transaction():
            for ev in events:
                await self._producer.send(self.cfg.kafka.topics.events, encode(ev), key=ev.host_key.encode())
            await self._producer.send(self.topic, encode(cursor), key=CURSOR_KEY)


async def last_cursor(consumer: Any, tp: TopicPartition) -> ChangelogCursor | None:
    """The newest committed cursor on the partition (None: there is none). Reads back from the end:
    every transaction also leaves a commit marker, so the last record is a few offsets before it."""
    end = (await consumer.end_offsets([tp]))[tp]
    for back in (16, 4096, None):
        if back is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, max(0, end - back))
        found: ChangelogCursor | None = None
        while await consumer.position(tp) < end:
            for recs in (await consumer.getmany(tp, timeout_ms=1000)).values():
                for rec in recs:
                    if rec.key == CURSOR_KEY and rec.value is not None:
                        with contextlib.suppress(Exception):
                            msg = decode(rec.value)
                            if isinstance(msg, ChangelogCursor):
                                found = msg
        if found is not None or back is None or end <= back:
            return found
    return None
