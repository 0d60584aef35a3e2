"""bench/chaos: a soak of the whole pipeline under faults, then a check that nothing was lost.

Against the real local stack (scripts/stack up): NetBox's own webhooks -> a receiver -> Kafka -> two
or more real `nbzx consumer` processes -> Zabbix 6.0 (with `--servers 2`: the soak's first site on
Zabbix 6.0, its second on 7.0, routed by site, and devices moved between the sites, so between the
servers; either server is the one taken down). For `--minutes`, a seeded random stream of NetBox
changes (devices, VMs, interfaces and IPs, sites, tags, a config context; some with bad data that must
be dead-lettered) runs while faults are injected at random: kill -9 of a consumer, consumers added and
removed (rebalances), the broker stopped and restarted, Zabbix down, NetBox's API down. Then the faults stop
and, without a reconcile, it checks:
- every chaos object in NetBox is in Zabbix exactly as `map_host` of its present state wants (the
  planner finds nothing to do, on every server), and the bad-data ones are absent;
- nothing exists for deleted objects; one Zabbix host per key, on the server it is routed to only;
- the dead-letter topic holds exactly the bad-data keys, each with its reason.
It prints the changes made, the faults by kind, the time to converge after the last fault, the letters
and every violated invariant with its key.

    .venv/bin/python bench/chaos.py [--minutes 20] [--seed N] [--consumers 2] [--servers 1|2] [--secure]

With `--secure` the soak runs on the stack's secure cluster (scripts/stack up kafka3: three brokers,
SASL_SSL, ACLs): the receiver and the consumers each with their own user and only the ACLs of
`nbzx kafka acls`, topics made by the hook's user with replication 3, and the broker faults become:
kill -9 of a partition's leader, a broker stopped for a while, and a rolling restart of all three.

Not injected: a slow (rather than absent) Zabbix. Broker outages are kept under NetBox's webhook retry
budget (RQ_RETRY_INTERVAL 2+5+10+30+60 s on the local stack): a webhook NetBox gives up on is a change
only the periodic reconcile can recover, which this soak deliberately does not run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec
import pynetbox
from aiohttp import web
from zabbix_utils import ZabbixAPI

from nbzx.common.config import Config, zabbix_servers
from nbzx.common.kafka import create_topics
from nbzx.common.logging import setup_logging
from nbzx.engine.netbox import NetBox
from nbzx.engine.sync import SyncEngine
from nbzx.engine.zabbix import Zabbix
from nbzx.receiver.app import make_app
from nbzx.schemas import DeadLetter, decode
from tests import kafka3
from tests.conftest import (
    NETBOX_TOKEN,
    NETBOX_URL,
    ROOT,
    TEST_MARK,
    WEBHOOK_TYPES,
    ZABBIX7_URL,
    ZABBIX_URL,
    consume_all,
    create_webhook,
    make_config,
)
from tests.e2e.pipeline import ConsumerProcess, free_port, pipeline_config_doc, write_config

BAD_TAG = "chaos-bad"  # devices with it name a template Zabbix does not have: dead-lettered
STATUSES = ["active", "offline", "planned", "active", "active"]
# With --servers 2: the server names, their URLs and the stack services that serve their APIs.
SERVERS = {"old": (ZABBIX_URL, "zabbix"), "new": (ZABBIX7_URL, "zabbix7")}
CREDENTIALS = {"user_env": "ZABBIX_USER", "password_env": "ZABBIX_PASSWORD"}


class Report(msgspec.Struct, kw_only=True):
    """What a soak did and found."""

    seed: int
    minutes: float
    servers: int = 1
    secure: bool = False
    changes: dict[str, int]
    faults: dict[str, int]
    converge_s: float | None
    letters: int
    violations: list[str]


def stack(*args: str) -> None:
    subprocess.run([str(ROOT / "scripts" / "stack"), *args], check=True, capture_output=True)


def stop_netbox_api() -> None:
    """Stop NetBox's web process only (the one scripts/stack started, by its PID): its API is gone,
    while its webhook worker and queue stay, as when a NetBox web node goes down."""
    home = Path(os.environ.get("NBZX_STATE_HOME", Path.home() / ".local" / "state" / "nbzx-stack"))
    state = (home / "stack.state").read_text().split("\n")
    pid = next(int(line.split()[1]) for line in state if line.startswith("netbox-web "))
    os.killpg(pid, signal.SIGKILL)  # a crash, not a drain: gunicorn's graceful stop takes 30 s
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def say(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Chaos:
    def __init__(self, seed: int, consumers: int, workdir: Path, servers: int = 1, secure: bool = False) -> None:
        self.rng = random.Random(seed)
        self.seed, self.min_consumers, self.workdir, self.servers = seed, consumers, workdir, servers
        self.secure = secure
        self.nb = pynetbox.api(NETBOX_URL, token=NETBOX_TOKEN)
        self.tag = f"chaos-{uuid.uuid4().hex[:6]}"
        several: dict[str, Any] = {}
        if servers == 2:  # site s0 on old (6.0), s1 on new (7.0); VMs and anything else on old
            several = {
                "zabbix": {"servers": {n: {"url": url, **CREDENTIALS} for n, (url, _) in SERVERS.items()}},
                "routes": [
                    {"match": {"site": f"{self.tag}-s1"}, "servers": ["new"]},
                    {"servers": ["old"]},
                ],
            }
        self.cfg: Config = make_config(
            **several,
            host={
                "groups": ["NetBox/{site.name}"],
                "description": "{description}",
                "templates": [{"match": {"tag": BAD_TAG}, "templates": ["No Such Template"]}],
                "tags": {"from_netbox_tags": True},
            },
            delete={"mode": "hard"},
        )
        if secure:  # the soak's own reads (dead letters) as admin; each process gets its own user
            self.cfg = kafka3.on_cluster(self.cfg, "admin")
        self.consumers: list[ConsumerProcess] = []
        self.changes: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.devices: dict[int, Any] = {}  # live chaos devices by id
        self.vms: dict[int, Any] = {}
        self.ever: set[str] = set()  # every host key the soak created
        self.bad: set[str] = set()
        self.sites: list[Any] = []
        self.empty_sites: list[Any] = []
        self.tags: list[Any] = []
        self.netbox_up = True

    # ---- set-up ----

    async def setup(self) -> None:
        if self.secure:
            kafka3.grant(self.cfg)
            await create_topics(kafka3.on_cluster(self.cfg, "nbzx-hook"))
        else:
            await create_topics(self.cfg)
        t = self.tag
        nb = self.nb
        self.manu = nb.dcim.manufacturers.create(name=t, slug=t)
        self.dtype = nb.dcim.device_types.create(manufacturer=self.manu.id, model=t, slug=t)
        self.role = nb.dcim.device_roles.create(name=f"{t}-role", slug=f"{t}-role", color="9e9e9e")
        self.sites = [nb.dcim.sites.create(name=f"{t}-s{i}", slug=f"{t}-s{i}", description=TEST_MARK) for i in range(2)]
        self.ctype = nb.virtualization.cluster_types.create(name=t, slug=t)
        self.cluster = nb.virtualization.clusters.create(name=t, type=self.ctype.id, site=self.sites[0].id)
        bad = nb.extras.tags.get(slug=BAD_TAG) or nb.extras.tags.create(name=BAD_TAG, slug=BAD_TAG)
        self.bad_tag = bad
        self.context = nb.extras.config_contexts.create(
            name=t, weight=1000, sites=[self.sites[1].id], data={"zabbix": {"tags": {"chaos": "v0"}}}
        )
        app = make_app(kafka3.on_cluster(self.cfg, "nbzx-receiver") if self.secure else self.cfg)
        # NetBox's webhook worker leaves connections open: do not wait aiohttp's 60 s for them at the end.
        self.runner = web.AppRunner(app, shutdown_timeout=2.0)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        types = [*WEBHOOK_TYPES, "dcim.site", "extras.tag", "extras.configcontext"]
        self.webhook, self.rule = create_webhook(nb, f"http://127.0.0.1:{port}/webhook", types, t)
        self.doc = pipeline_config_doc(self.cfg, **msgspec.to_builtins(self.cfg.host))
        self.doc["delete"] = {"mode": "hard"}
        self.doc["consumer"]["retry_max_s"] = 2
        if self.servers == 2:
            self.doc["zabbix"] = {
                "servers": {n: {"url": u, "rate_per_s": 200, **CREDENTIALS} for n, (u, _) in SERVERS.items()}
            }
            self.doc["routes"] = msgspec.to_builtins(self.cfg.routes)
        if self.secure:
            self.doc["kafka"].update(kafka3.kafka_doc())
        for _ in range(self.min_consumers):
            self.add_consumer()

    def add_consumer(self) -> None:
        doc = {**self.doc, "consumer": {**self.doc["consumer"], "http_port": free_port()}}
        n = len(self.consumers)
        path = write_config(doc, self.workdir / f"consumer{n}-{uuid.uuid4().hex[:4]}.yaml")
        env = kafka3.credentials("nbzx-consumer") if self.secure else None
        self.consumers.append(ConsumerProcess(path, self.workdir / f"consumer{n}.log", env=env))

    # ---- NetBox changes ----

    def ip(self) -> str:
        return f"10.{self.rng.randrange(200, 250)}.{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}"

    def change(self) -> None:
        kind = self.rng.choices(
            [
                "dev_create",
                "dev_update",
                "dev_delete",
                "vm_create",
                "vm_update",
                "vm_delete",
                "ip_change",
                "site_cycle",
                "tag_cycle",
                "context",
                "bad_device",
                "dev_move",
            ],
            weights=[8, 10, 3, 3, 3, 1, 4, 1, 2, 1, 1, 3 if self.servers == 2 else 0],
        )[0]
        nb, rng = self.nb, self.rng
        if kind == "dev_create" or (kind in ("dev_update", "dev_delete", "ip_change", "dev_move") and not self.devices):
            kind = "dev_create"
            site = rng.choice(self.sites)
            dev = nb.dcim.devices.create(
                name=f"{self.tag}-d{uuid.uuid4().hex[:5]}",
                device_type=self.dtype.id,
                role=self.role.id,
                site=site.id,
                status="active",
            )
            if rng.random() < 0.6:
                iface = nb.dcim.interfaces.create(device=dev.id, name="eth0", type="1000base-t")
                addr = nb.ipam.ip_addresses.create(
                    address=f"{self.ip()}/24", assigned_object_type="dcim.interface", assigned_object_id=iface.id
                )
                dev.update({"primary_ip4": addr.id})
            self.devices[dev.id] = dev
            self.ever.add(f"dcim.device:{dev.id}")
        elif kind == "dev_update":
            dev = self.devices[rng.choice(sorted(self.devices))]
            what = rng.choice(["description", "status", "name", "tags"])
            if what == "description":
                dev.update({"description": f"d{rng.randrange(1000)}"})
            elif what == "status":
                dev.update({"status": rng.choice(STATUSES)})
            elif what == "name":
                dev.update({"name": f"{self.tag}-d{uuid.uuid4().hex[:5]}"})
            elif self.tags:
                dev.update({"tags": [t.id for t in rng.sample(self.tags, k=min(len(self.tags), rng.randrange(3)))]})
        elif kind == "dev_delete":
            dev = self.devices.pop(rng.choice(sorted(self.devices)))
            dev.delete()
        elif kind == "dev_move":  # to the other site: with two servers, to the other server
            dev = self.devices[rng.choice(sorted(self.devices))]
            here = dev.site.id if dev.site else self.sites[0].id
            dev.update({"site": next(s.id for s in self.sites if s.id != here)})
        elif kind == "ip_change":
            dev = self.devices[rng.choice(sorted(self.devices))]
            addrs = list(nb.ipam.ip_addresses.filter(device_id=dev.id))
            if addrs:
                addrs[0].update({"address": f"{self.ip()}/24"})
        elif kind == "vm_create" or (kind in ("vm_update", "vm_delete") and not self.vms):
            kind = "vm_create"
            vm = nb.virtualization.virtual_machines.create(
                name=f"{self.tag}-v{uuid.uuid4().hex[:5]}", cluster=self.cluster.id, status="active"
            )
            self.vms[vm.id] = vm
            self.ever.add(f"virtualization.virtualmachine:{vm.id}")
        elif kind == "vm_update":
            self.vms[rng.choice(sorted(self.vms))].update({"description": f"v{rng.randrange(1000)}"})
        elif kind == "vm_delete":
            self.vms.pop(rng.choice(sorted(self.vms))).delete()
        elif kind == "site_cycle":  # an empty site made and deleted: its deletion must cost nothing
            if self.empty_sites and rng.random() < 0.6:
                self.empty_sites.pop().delete()
            else:
                s = f"{self.tag}-e{uuid.uuid4().hex[:4]}"
                self.empty_sites.append(nb.dcim.sites.create(name=s, slug=s, description=TEST_MARK))
        elif kind == "tag_cycle":
            if self.tags and rng.random() < 0.4:
                self.tags.pop(rng.randrange(len(self.tags))).delete()  # hosts carrying it must lose it
            else:
                s = f"{self.tag}-t{uuid.uuid4().hex[:4]}"
                self.tags.append(nb.extras.tags.create(name=s, slug=s))
        elif kind == "context":
            self.context.update({"data": {"zabbix": {"tags": {"chaos": f"v{rng.randrange(100)}"}}}})
        elif kind == "bad_device":
            dev = nb.dcim.devices.create(
                name=f"{self.tag}-bad{uuid.uuid4().hex[:5]}",
                device_type=self.dtype.id,
                role=self.role.id,
                site=self.sites[0].id,
                status="active",
                tags=[self.bad_tag.id],
            )
            self.bad.add(f"dcim.device:{dev.id}")
            self.ever.add(f"dcim.device:{dev.id}")
        self.changes[kind] += 1

    # ---- faults ----

    async def fault(self) -> None:
        kind = self.rng.choice(["kill9", "add", "remove", "broker", "zabbix", "netbox"])
        if self.secure and not self.faults.get("leader_kill9"):
            kind = "broker"  # every soak on the cluster kills a partition leader first
        alive = [c for c in self.consumers if c.proc.poll() is None]
        if kind == "kill9" and alive:
            victim = self.rng.choice(alive)
            victim.kill9()
            self.consumers.remove(victim)
            self.add_consumer()
        elif kind == "add" and len(alive) < 4:
            self.add_consumer()
        elif kind == "remove" and len(alive) > self.min_consumers:
            victim = self.rng.choice(alive)
            await asyncio.to_thread(victim.stop)
            self.consumers.remove(victim)
        elif kind == "broker" and self.secure:
            kind = await self.broker_fault()
        elif kind in ("broker", "zabbix", "netbox"):
            zabbix = self.rng.choice([s for _, s in SERVERS.values()]) if self.servers == 2 else "zabbix"
            service = {"broker": "kafka", "zabbix": zabbix, "netbox": "netbox"}[kind]
            down_s = self.rng.uniform(3, 10)
            say(f"fault: {service} down for {down_s:.0f}s")
            if kind == "netbox":
                self.netbox_up = False
                await asyncio.to_thread(stop_netbox_api)
            else:
                await asyncio.to_thread(stack, "down", service)
            await asyncio.sleep(down_s)
            await asyncio.to_thread(stack, "up", service)
            self.netbox_up = True
        else:
            return
        self.faults[kind] += 1
        say(f"fault: {kind} ({len([c for c in self.consumers if c.proc.poll() is None])} consumers)")

    async def broker_fault(self) -> str:
        """One fault of the secure cluster; returns its kind. Two brokers stay up (min.insync.replicas 2)
        except in the rolling restart, which takes them down one at a time."""
        kind = self.rng.choice(["leader_kill9", "broker_stop", "rolling_restart"])
        if not self.faults.get("leader_kill9"):
            kind = "leader_kill9"
        down_s = self.rng.uniform(3, 10)
        if kind == "leader_kill9":
            node = await self.leader(self.rng.randrange(self.cfg.kafka.partitions))
            say(f"fault: kill -9 of node {node}, a partition leader of the events topic, for {down_s:.0f}s")
            await asyncio.to_thread(kafka3.broker, "kill", node)
            await asyncio.sleep(down_s)
            await asyncio.to_thread(kafka3.broker, "start", node)
        elif kind == "broker_stop":
            node = self.rng.randint(1, 3)
            say(f"fault: node {node} stopped for {down_s:.0f}s")
            await asyncio.to_thread(kafka3.broker, "stop", node)
            await asyncio.sleep(down_s)
            await asyncio.to_thread(kafka3.broker, "start", node)
        else:
            say("fault: rolling restart of the three brokers")
            for node in (1, 2, 3):
                await asyncio.to_thread(kafka3.broker, "stop", node)
                await asyncio.to_thread(kafka3.broker, "start", node)
        return kind

    async def leader(self, partition: int) -> int:
        """The node leading `partition` of the events topic now."""
        from aiokafka.admin import AIOKafkaAdminClient

        from nbzx.common.kafka import client_kwargs

        admin = AIOKafkaAdminClient(**client_kwargs(self.cfg))
        await admin.start()
        try:
            [desc] = await admin.describe_topics([self.cfg.kafka.topics.events])
            return int(next(p["leader"] for p in desc["partitions"] if p["partition"] == partition))
        finally:
            await admin.close()

    # ---- the run ----

    async def run(self, minutes: float) -> Report:
        await self.setup()
        say(f"seed {self.seed}: {minutes} min of changes and faults, {self.min_consumers}+ consumers")
        end = time.monotonic() + minutes * 60
        next_fault = time.monotonic() + self.rng.uniform(5, 15)
        last_fault = time.monotonic()
        last_progress = time.monotonic()
        while time.monotonic() < end:
            if time.monotonic() >= next_fault:
                await self.fault()
                last_fault = time.monotonic()
                next_fault = last_fault + self.rng.uniform(8, 20)
            if self.netbox_up:
                try:
                    await asyncio.to_thread(self.change)
                except pynetbox.RequestError as exc:  # e.g. an IP drawn twice: NetBox refused, nothing changed
                    self.changes["refused_by_netbox"] += 1
                    say(f"NetBox refused a change: {str(exc)[:120]}")
            await asyncio.sleep(self.rng.uniform(0.05, 0.4))
            if time.monotonic() - last_progress > 30:
                last_progress = time.monotonic()
                say(f"{sum(self.changes.values())} changes, {sum(self.faults.values())} faults so far")
        for c in self.consumers:
            if c.proc.poll() is not None:
                say(f"a consumer exited on its own (rc {c.proc.returncode}): see {c.log_path}")
        say("faults stopped; waiting for convergence (no reconcile)")
        converge_s, violations = await self.converge(last_fault)
        letters = await self.letters()
        report = Report(
            seed=self.seed,
            minutes=minutes,
            servers=self.servers,
            secure=self.secure,
            changes=dict(self.changes),
            faults=dict(self.faults),
            converge_s=converge_s,
            letters=len(letters),
            violations=violations,
        )
        return report

    async def converge(self, last_fault: float, timeout_s: float = 240) -> tuple[float | None, list[str]]:
        deadline = time.monotonic() + timeout_s
        violations: list[str] = []
        while time.monotonic() < deadline:
            violations = await self.check()
            if not violations:
                return time.monotonic() - last_fault, []
            await asyncio.sleep(3)
        return None, violations

    async def check(self) -> list[str]:
        """Every invariant, each violation named with its key (and server)."""
        out: list[str] = []
        site_of = {
            f"dcim.device:{d.id}": d.site.id for d in self.nb.dcim.devices.filter(site_id=[s.id for s in self.sites])
        }
        live_vms = {
            f"virtualization.virtualmachine:{v.id}"
            for v in self.nb.virtualization.virtual_machines.filter(cluster_id=self.cluster.id)
        }
        live = (set(site_of) | live_vms) & self.ever
        servers = zabbix_servers(self.cfg)
        first = next(iter(servers))

        def home(key: str) -> str:
            return "new" if self.servers == 2 and site_of.get(key) == self.sites[1].id else first

        for name, server in servers.items():
            zapi = ZabbixAPI(url=f"{server.url}/api_jsonrpc.php")
            zapi.login(user="Admin", password="zabbix")
            try:
                rows = zapi.host.get(
                    output=["hostid"], selectTags=["tag", "value"], tags=[{"tag": "netbox:key", "operator": 4}]
                )
            finally:
                zapi.logout()
            on = f" on {name}" if self.servers > 1 else ""
            per_key = Counter(next(t["value"] for t in r["tags"] if t["tag"] == "netbox:key") for r in rows)
            for key, n in per_key.items():
                if key in self.ever and n > 1:
                    out.append(f"{key}: {n} Zabbix hosts for one key{on}")
            for key in sorted(self.ever - live):
                if per_key.get(key):
                    out.append(f"{key}: deleted in NetBox, still in Zabbix{on}")
            for key in sorted(live & self.bad):
                if per_key.get(key):
                    out.append(f"{key}: bad data, yet in Zabbix{on}")
            for key in sorted(live - self.bad):
                if home(key) != name and per_key.get(key):
                    out.append(f"{key}: in Zabbix {name}, but routed to {home(key)}")
        good = sorted(live - self.bad)
        engine = SyncEngine(self.cfg, NetBox(self.cfg), {n: Zabbix(self.cfg, server=n) for n in servers})
        try:
            await asyncio.gather(*(z.start() for z in engine.servers.values()))
            plans = await engine.plans(good)
        finally:
            await asyncio.gather(*(z.close() for z in engine.servers.values()))
            engine.netbox.close()
        for key, per_server in sorted(plans.items()):
            for server, plan in per_server.items():
                if not plan.empty:
                    what = f"{plan.action} {sorted(plan.changes)} {plan.reason}"
                    out.append(f"{key}: Zabbix {server} differs from NetBox: {what}")
        lettered = {d.host_key for d in await self.letters()}
        for key in sorted(self.bad - lettered):
            out.append(f"{key}: bad data, but no dead letter")
        for key in sorted(lettered - self.bad):
            out.append(f"{key}: dead-lettered, but its data was good")
        return out

    async def letters(self) -> list[DeadLetter]:
        recs = await consume_all(self.cfg, self.cfg.kafka.topics.dlq, 100_000, timeout_s=3)
        return [m for m in (decode(r.value) for r in recs) if isinstance(m, DeadLetter)]

    async def teardown(self) -> None:
        if not self.netbox_up:  # interrupted during a NetBox fault: its objects cannot go without it
            await asyncio.to_thread(stack, "up", "netbox")
        for c in self.consumers:
            await asyncio.to_thread(c.stop)
        await self.runner.cleanup()
        for obj in (self.rule, self.webhook):
            obj.delete()
        ids = [d.id for s in self.sites for d in self.nb.dcim.devices.filter(site_id=s.id)]
        if ids:
            self.nb.dcim.devices.delete(ids)
        vm_ids = [v.id for v in self.nb.virtualization.virtual_machines.filter(cluster_id=self.cluster.id)]
        if vm_ids:
            self.nb.virtualization.virtual_machines.delete(vm_ids)
        for obj in [
            self.context,
            self.cluster,
            self.ctype,
            *self.empty_sites,
            *self.sites,
            self.dtype,
            self.manu,
            self.role,
            *self.tags,
        ]:
            try:
                obj.delete()
            except pynetbox.RequestError as exc:
                say(f"teardown: could not delete {obj}: {exc}")


def print_report(r: Report) -> None:
    where = "the secure three-broker cluster (SASL_SSL, ACLs)" if r.secure else "one broker"
    print(f"chaos: seed {r.seed}, {r.minutes} min, {r.servers} Zabbix server(s), {where}")
    print(f"  changes made: {sum(r.changes.values())}  " + ", ".join(f"{k} {v}" for k, v in sorted(r.changes.items())))
    print(f"  faults injected: {sum(r.faults.values())}  " + ", ".join(f"{k} {v}" for k, v in sorted(r.faults.items())))
    conv = f"{r.converge_s:.1f} s" if r.converge_s is not None else "did not converge"
    print(f"  time to converge after the last fault: {conv}")
    print(f"  dead letters: {r.letters}")
    print(f"  violated invariants: {len(r.violations)}")
    for v in r.violations:
        print(f"    {v}")


async def soak(minutes: float, seed: int, consumers: int = 2, servers: int = 1, secure: bool = False) -> Report:
    """One soak; the stack must be up (scripts/stack up, and kafka3 for `secure`)."""
    with tempfile.TemporaryDirectory(prefix="nbzx-chaos-") as tmp:
        chaos = Chaos(seed, consumers, Path(tmp), servers, secure)
        try:
            return await chaos.run(minutes)
        finally:
            await chaos.teardown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--servers", type=int, choices=[1, 2], default=1, help="2: Zabbix 6.0 and 7.0, routed by site")
    ap.add_argument("--secure", action="store_true", help="on the secure three-broker cluster (stack up kafka3)")
    args = ap.parse_args()
    setup_logging("warning")  # the in-process receiver's line per webhook would bury the soak's own lines
    report = asyncio.run(soak(args.minutes, args.seed, args.consumers, args.servers, args.secure))
    print_report(report)
    return 0 if not report.violations else 1


if __name__ == "__main__":
    sys.exit(main())
