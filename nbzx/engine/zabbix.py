"""The Zabbix edge: one async client (zabbix-utils) behind the budget, host reads, host writes,
and the cache of templates, host groups and proxies (the "settings import").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiohttp
import msgspec
from prometheus_client import Counter, Histogram
from zabbix_utils import AsyncZabbixAPI
from zabbix_utils.exceptions import APIRequestError, ProcessingError

from nbzx.common.config import Config, auth_of, zabbix_servers
from nbzx.common.logging import get_logger
from nbzx.common.retry import retry
from nbzx.common.tls import aiohttp_ssl, warn_unverified
from nbzx.core.model import MAINTENANCE_PREFIX, OWNER_TAG, ActualHost, Plan, Window
from nbzx.core.zabbix_payloads import host_get_params, normalise_host, write_params
from nbzx.core.zabbix_versions import Capabilities, UnsupportedZabbix, capabilities, row
from nbzx.engine.ratelimit import Budget

log = get_logger(component="zabbix")

CALLS = Counter("nbzx_zabbix_calls_total", "Zabbix API calls", ["server", "method", "result"])
CALL_SECONDS = Histogram("nbzx_zabbix_call_seconds", "Zabbix API call duration", ["server", "method"])
WRITE_METHODS = frozenset(
    {
        "host.create",
        "host.update",
        "host.delete",
        "host.massupdate",
        "host.massadd",
        "host.massremove",
        "hostgroup.create",
        "maintenance.create",
        "maintenance.update",
        "maintenance.delete",
    }
)


class ZabbixError(Exception):
    """A Zabbix call failed. `transient` errors are retried; the others go to the DLQ."""

    def __init__(self, message: str, *, transient: bool, method: str = "", busy: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.method = method
        self.busy = busy  # Zabbix answered with an error (not unreachable): asked again only if its DB was busy


# Zabbix answers these when its database is busy: concurrent host.create on 6.0 gives DBEXECUTE_ERROR,
# 7.0 "Database error occurred.", concurrent template linking "Your database is not working properly
# ... row level lock". The transaction was rolled back, so the call can simply be made again.
_TRANSIENT_TEXT = (
    "db locked",
    "database is locked",
    "deadlock",
    "could not serialize",
    "connection",
    "dbexecute_error",
    "database is not working properly",
    "row level lock",
    "database error occurred",
)


def is_transient(text: str) -> bool:
    """Whether a Zabbix API error says its database was busy (the call can simply be made again)."""
    return any(t in text.lower() for t in _TRANSIENT_TEXT)


DB_RETRIES = 3
HOST_PAGE = 2000  # hosts per host.get when reading them all


class Zabbix:
    """A long-lived client. Every call goes through the budget and is counted by method.

    One client per Zabbix server (`server`, its name in the config; the first one by default).
    `caps` is the server's row of the capability table once `start()` has run; `force_row` ("8.0")
    makes the client use another row's code path on this server (tests run 8.0's writes on 7.0).
    """

    def __init__(
        self,
        cfg: Config,
        budget: Budget | None = None,
        cache_ttl_s: float = 300.0,
        force_row: str | None = None,
        server: str | None = None,
    ) -> None:
        self._cfg = cfg
        self.server = server or next(iter(zabbix_servers(cfg)))
        self.settings = zabbix_servers(cfg)[self.server]
        self._auth = auth_of(cfg, self.server)
        self.log = log.bind(server=self.server)
        self.budget = budget or Budget(self.settings.rate_per_s, self.settings.concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._api: Any = None
        self._force_row = force_row
        self.caps: Capabilities = row(force_row or "6.0")
        self._cache_ttl = cache_ttl_s
        self._cache_at = 0.0
        self._cache_lock = asyncio.Lock()
        self._reloading: asyncio.Task[None] | None = None
        self._groups_lock = asyncio.Lock()
        self._login_lock = asyncio.Lock()
        self._logins = 0  # sessions opened so far: tells a caller whether its expired one was renewed
        self.templates: dict[str, str] = {}
        self.groups: dict[str, str] = {}
        self.proxies: dict[str, str] = {}
        self.proxy_groups: dict[str, str] = {}
        self.calls: dict[str, int] = {}  # method -> count, for tests and benchmarks

    @property
    def url(self) -> str:
        base = self.settings.url.rstrip("/")
        return base if base.endswith("api_jsonrpc.php") else f"{base}/api_jsonrpc.php"

    async def start(self) -> None:
        """Connect, pick the server's row of the capability table and log in (token, or user and password).

        Any Zabbix from 6.0 on is accepted (our table decides, not the library's own version gate); an
        older one is a permanent `ZabbixError` naming its version.
        """
        where = f"zabbix.servers.{self.server}" if self._cfg.zabbix.servers else "zabbix"
        ssl = aiohttp_ssl(self.settings.ca_file, self.settings.verify_tls, where)
        warn_unverified(self.log, where, self.url, self.settings.verify_tls)
        connector = aiohttp.TCPConnector(limit=self.settings.concurrency * 2, ssl=ssl)
        self._session = aiohttp.ClientSession(connector=connector)
        try:
            # The constructor asks apiinfo.version with a blocking request: keep it off the loop.
            self._api = await asyncio.to_thread(
                AsyncZabbixAPI,
                url=self.url,
                client_session=self._session,
                timeout=int(self.settings.timeout_s),
                validate_certs=self.settings.verify_tls,
                skip_version_check=True,
            )
            version = str(self._api.version)
            self.caps = capabilities(version)
            if self._force_row:
                self.caps = msgspec.structs.replace(row(self._force_row), version=version)
            await self._login()
        except UnsupportedZabbix as exc:
            await self.close()
            raise ZabbixError(f"Zabbix at {self.url}: {exc}", transient=False) from exc
        except (ProcessingError, APIRequestError, aiohttp.ClientError, OSError) as exc:
            await self.close()
            if "CERTIFICATE_VERIFY_FAILED" in str(exc) or isinstance(exc, aiohttp.ClientConnectorCertificateError):
                # A certificate our CA did not sign will not start being trusted by waiting.
                trust = f"{where}.ca_file ({self.settings.ca_file})" if self.settings.ca_file else "the system's CAs"
                raise ZabbixError(
                    f"the certificate of Zabbix at {self.url} is not signed by {trust}: {exc}", transient=False
                ) from exc
            raise ZabbixError(f"cannot log in to Zabbix at {self.url}: {exc}", transient=True) from exc
        if self.caps.newer_than_known:
            self.log.warning(
                "zabbix_newer_than_known",
                url=self.url,
                version=self.caps.version,
                assumed=self.caps.row,
                hint="this Zabbix is newer than any this release was tested on; it is used as the newest known one",
            )
        self.log.info("zabbix_connected", url=self.url, version=self.caps.version, capabilities=self.caps.row)

    async def _login(self) -> None:
        auth = self._auth
        if auth.token:
            await self._api.login(token=auth.token)
        else:
            await self._api.login(user=auth.user, password=auth.password)
        self._logins += 1

    async def close(self) -> None:
        """Close the HTTP session (a token login needs no logout)."""
        if self._reloading is not None:
            self._reloading.cancel()
        if self._api is not None and not self._auth.token:
            try:
                await self._api.user.logout()
            except Exception as exc:  # logging out of a Zabbix that is gone must not fail shutdown
                self.log.debug("zabbix_logout_failed", error=repr(exc))
        if self._session is not None:
            await self._session.close()
        self._session = self._api = None

    async def call(self, method: str, params: Any) -> Any:
        """One API call through the budget; errors become `ZabbixError` (transient or not). A busy
        database is asked again (`DB_RETRIES` times, with backoff); an expired session logs in again, once."""
        relogged = False

        async def once() -> Any:
            nonlocal relogged
            api = await self._logged_in()
            login = self._logins
            try:
                async with self.budget.slot():
                    resp = await self._send(api, method, params)
            except APIRequestError as exc:
                text = str(exc)
                if not relogged and ("re-login" in text or "Not authorised" in text):
                    relogged = True  # the session expired (or the DB was reset): log in again, once
                    await self._relogin(login)
                    return await once()
                raise ZabbixError(f"{method}: {text}", transient=is_transient(text), method=method, busy=True) from exc
            return resp["result"]

        # The backoff sleeps outside the slot: a call waiting for a busy database holds no concurrency permit.
        return await retry(
            once,
            retry_if=lambda e: isinstance(e, ZabbixError) and e.busy and e.transient,
            on_retry=lambda e, delay: self.log.info("zabbix_busy_retry", method=method, error=str(e), retry_in_s=delay),
            base_s=0.2,
            max_s=2.0,
            attempts=DB_RETRIES + 1,
        )

    async def _send(self, api: Any, method: str, params: Any) -> Any:
        """The request itself, timed and counted; a network failure becomes a transient `ZabbixError`."""
        t0 = time.perf_counter()
        try:
            resp = await api.send_async_request(method, params)
        except APIRequestError:
            CALLS.labels(self.server, method, "error").inc()
            raise
        except (aiohttp.ClientError, OSError, TimeoutError, ProcessingError) as exc:
            CALLS.labels(self.server, method, "error").inc()
            raise ZabbixError(f"{method}: Zabbix unreachable: {exc!r}", transient=True, method=method) from exc
        finally:
            CALL_SECONDS.labels(self.server, method).observe(time.perf_counter() - t0)
            self.calls[method] = self.calls.get(method, 0) + 1
        CALLS.labels(self.server, method, "ok").inc()
        return resp

    async def connect(self) -> None:
        """`start`, unless a session is open already or being opened (calls made meanwhile wait for it)."""
        await self._logged_in()

    async def _logged_in(self) -> Any:
        """The current API client, logging in first if there is none (once, however many callers wait)."""
        async with self._login_lock:
            if self._api is None:
                await self.start()
            return self._api

    async def _relogin(self, seen: int) -> None:
        """A new session on the same HTTP client, so requests in flight are not cut off; callers whose
        session expired at the same time find it already renewed (`seen` is the login they used)."""
        async with self._login_lock:
            if self._logins == seen:
                try:
                    await self._login()
                except (ProcessingError, APIRequestError, aiohttp.ClientError, OSError) as exc:
                    raise ZabbixError(f"cannot log in to Zabbix at {self.url}: {exc}", transient=True) from exc

    @property
    def write_calls(self) -> int:
        """How many write calls this client made (a no-op sync must make none)."""
        return sum(n for m, n in self.calls.items() if m in WRITE_METHODS)

    # ---- settings cache ----

    async def refresh_settings(self, force: bool = False) -> None:
        """Templates, host groups and proxies: loaded now when forced or never loaded; when only older
        than the TTL, reloaded in the background while the cache serves on (a sync does not wait for
        four listings every few minutes: that wait was a latency spike). A name the cache lacks makes
        its caller force a reload (`resolve`, `ensure_groups`)."""
        if force or self._cache_at == 0.0:
            await self._reload_settings()
        elif time.monotonic() - self._cache_at >= self._cache_ttl and (
            self._reloading is None or self._reloading.done()
        ):
            self._reloading = asyncio.create_task(self._reload_in_background())

    async def _reload_in_background(self) -> None:
        try:
            await self._reload_settings()
        except ZabbixError as exc:  # the cache serves on; the next call past the TTL tries again
            self.log.warning("zabbix_settings_reload_failed", error=str(exc))

    async def _reload_settings(self) -> None:
        await self._logged_in()  # the server's capability row (proxy field names) is known from here on
        async with self._cache_lock:
            name_field = self.caps.proxy_name_field
            templates, groups, proxies, pgs = await asyncio.gather(
                self.call("template.get", {"output": ["templateid", "host", "name"]}),
                self.call("hostgroup.get", {"output": ["groupid", "name"]}),
                self.call("proxy.get", {"output": ["proxyid", name_field]}),
                (
                    self.call("proxygroup.get", {"output": ["proxy_groupid", "name"]})
                    if self.caps.proxy_groups
                    else _none()
                ),
            )
            self.templates = {t["name"]: t["templateid"] for t in templates}
            self.templates.update({t["host"]: t["templateid"] for t in templates if t["host"] not in self.templates})
            self.groups = {g["name"]: g["groupid"] for g in groups}
            self.proxies = {p[name_field]: p["proxyid"] for p in proxies}
            if self.caps.proxy_groups:
                self.proxy_groups = {p["name"]: p["proxy_groupid"] for p in pgs}
            self._cache_at = time.monotonic()

    async def ensure_groups(self, names: Iterable[str]) -> None:
        """Create missing host groups, parents first ("NetBox/Site A" also makes "NetBox").

        One task at a time: a batch of new hosts in a new group must create it once, not once each.
        """
        wanted: set[str] = set()
        for name in names:
            parts = name.split("/")
            wanted.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        if wanted <= self.groups.keys():
            return
        async with self._groups_lock:
            missing = wanted - self.groups.keys()
            if not missing:
                return  # another task created them while this one waited
            await self.refresh_settings(force=True)  # made by hand or by another consumer since?
            for name in sorted(missing - self.groups.keys(), key=lambda g: (g.count("/"), g)):
                try:
                    res = await self.call("hostgroup.create", {"name": name})
                    self.groups[name] = res["groupids"][0]
                except ZabbixError as exc:
                    if "already exists" not in str(exc):
                        raise
                    await self.refresh_settings(force=True)

    async def resolve(self, *changes: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        """Name -> id maps for what the changes reference; unknown templates/proxies are permanent errors."""
        await self.refresh_settings()
        groups = {g for c in changes for g in c.get("groups", ())}
        if groups:
            await self.ensure_groups(groups)
        needed = {
            "templates": {t for c in changes for key in ("templates", "templates_clear") for t in c.get(key, ())},
            "proxies": {c["proxy"] for c in changes if c.get("proxy")},
            "proxy_groups": {c["proxy_group"] for c in changes if c.get("proxy_group")},
        }
        if any(n - getattr(self, k).keys() for k, n in needed.items()):
            await self.refresh_settings(force=True)  # created since the last import?
        for kind, names in needed.items():
            unknown = sorted(names - getattr(self, kind).keys())
            if unknown:
                raise ZabbixError(f"unknown {kind.replace('_', ' ')} in Zabbix: {', '.join(unknown)}", transient=False)
        return {
            "groups": self.groups,
            "templates": self.templates,
            "proxies": self.proxies,
            "proxy_groups": self.proxy_groups,
        }

    # ---- hosts ----

    async def hosts_by_key(self, host_keys: Iterable[str]) -> dict[str, ActualHost]:
        """Owned hosts for these keys, in one host.get."""
        keys = sorted(set(host_keys))
        if not keys:
            return {}
        await self.refresh_settings()  # proxy ids -> names
        rows = await self.call("host.get", host_get_params(self.caps, host_keys=keys))
        return self._by_key(rows)

    async def all_owned_hosts(self) -> dict[str, ActualHost]:
        """Every host carrying our ownership tag (paged, see `_every`)."""
        return {h.host_key: h for h in await self._every(host_get_params(self.caps)) if h.host_key}

    async def unowned_hosts(self) -> list[ActualHost]:
        """Every host without our ownership tag (what brownfield adoption looks at; paged)."""
        return await self._every(host_get_params(self.caps, unowned=True))

    async def _every(self, params: dict[str, Any]) -> list[ActualHost]:
        """Every host `params` selects: their ids in one host.get, then the hosts `HOST_PAGE` ids at a
        time, several at once within the budget. One host.get of everything needs PHP memory in
        proportion to the hosts (a stock frontend's 128 MB memory_limit fails near 100,000 hosts), and
        is slower than the pages (here 5.3 s for 20,000 hosts in one call, 2.0 s in pages of 2,000)."""
        await self.refresh_settings()
        only_ids = {k: v for k, v in params.items() if not k.startswith("select")} | {"output": ["hostid"]}
        ids = [r["hostid"] for r in await self.call("host.get", only_ids)]

        async def page(hostids: list[str]) -> list[ActualHost]:
            return self._normalise(await self.call("host.get", {**params, "hostids": hostids}))

        pages = await asyncio.gather(*(page(ids[i : i + HOST_PAGE]) for i in range(0, len(ids), HOST_PAGE)))
        return [h for p in pages for h in p]

    async def template_item_keys(self, names: Iterable[str]) -> dict[str, frozenset[str]]:
        """Template name -> the keys of its items and discovery rules (two templates sharing one cannot
        both be linked to a host)."""
        names = sorted(set(names))
        if not names:
            return {}
        rows = await self.call(
            "template.get",
            {"output": ["host"], "filter": {"host": names}, "selectItems": ["key_"], "selectDiscoveries": ["key_"]},
        )
        return {
            str(r["host"]): frozenset(i["key_"] for i in [*r.get("items", []), *r.get("discoveries", [])]) for r in rows
        }

    async def add_owner_tags(self, hosts: Sequence[tuple[ActualHost, str]]) -> None:
        """Make existing hosts ours, in one array host.update (tags are replaced as a whole: each host's
        other tags are sent back)."""
        rows = [
            {
                "hostid": host.hostid,
                "tags": [{"tag": t, "value": v} for t, v in host.tags if t != OWNER_TAG]
                + [{"tag": OWNER_TAG, "value": host_key}],
            }
            for host, host_key in hosts
        ]
        if rows:
            await self.call("host.update", rows)

    async def host_keys_with_tag(self, tag: str, values: list[str]) -> list[str]:
        """Keys of owned hosts carrying `tag` with one of `values`."""
        if not values:
            return []
        rows = await self.call(
            "host.get",
            {
                "output": ["hostid"],
                "selectTags": ["tag", "value"],
                "evaltype": 0,
                "tags": [{"tag": tag, "value": v, "operator": 1} for v in values],
            },
        )
        return sorted({t["value"] for r in rows for t in r["tags"] if t["tag"] == OWNER_TAG})

    async def maintenance_windows(self, host_keys: Iterable[str] | None) -> dict[str, Window]:
        """Our maintenance windows ("nbzx:<host key>") for these keys, or all of them (None)."""
        params: dict[str, Any] = {"output": ["maintenanceid", "name", "active_till"]}
        if host_keys is None:
            params["search"] = {"name": MAINTENANCE_PREFIX}
            params["startSearch"] = True
        else:
            names = [f"{MAINTENANCE_PREFIX}{k}" for k in sorted(set(host_keys))]
            if not names:
                return {}
            params["filter"] = {"name": names}
        rows = await self.call("maintenance.get", params)
        return {
            r["name"][len(MAINTENANCE_PREFIX) :]: Window(
                maintenanceid=str(r["maintenanceid"]), active_till=int(r["active_till"])
            )
            for r in rows
            if r["name"].startswith(MAINTENANCE_PREFIX)
        }

    async def apply_maintenance(self, plan: Plan, hostid: str | None, duration_s: int) -> None:
        """Open or remove the host's maintenance window as the plan says."""
        if plan.maintenance_id is not None:  # "end", or an expired window replaced by a new one
            await self._delete("maintenance.delete", plan.maintenance_id)
        if plan.maintenance == "start" and hostid is not None:
            now = int(time.time())
            await self.call(
                "maintenance.create",
                {
                    "name": f"{MAINTENANCE_PREFIX}{plan.host_key}",
                    "active_since": now,
                    "active_till": now + duration_s,
                    "maintenance_type": 0,  # with data collection
                    self.caps.maintenance_hosts_param: [{"hostid": hostid}],
                    "timeperiods": [{"timeperiod_type": 0, "start_date": now, "period": duration_s}],
                    "description": "Opened by netbox-zabbix-stream: the NetBox object is in maintenance.",
                },
            )

    async def cleanup_maintenance(self) -> int:
        """Remove our windows that have expired; returns how many."""
        now = int(time.time())
        expired = [w.maintenanceid for w in (await self.maintenance_windows(None)).values() if w.active_till <= now]
        if expired:
            await self.call("maintenance.delete", expired)
        return len(expired)

    async def hosts_by_name(self, names: Iterable[str]) -> dict[str, ActualHost]:
        """Hosts with these technical names, owned or not (for conflicts and adoption)."""
        names = sorted(set(names))
        if not names:
            return {}
        rows = await self.call("host.get", host_get_params(self.caps, names=names))
        await self.refresh_settings()
        return {h.host: h for h in self._normalise(rows)}

    def _by_key(self, rows: list[dict[str, Any]]) -> dict[str, ActualHost]:
        return {h.host_key: h for h in self._normalise(rows) if h.host_key}

    def _normalise(self, rows: list[dict[str, Any]]) -> list[ActualHost]:
        proxies = {v: k for k, v in self.proxies.items()}
        proxy_groups = {v: k for k, v in self.proxy_groups.items()}
        return [normalise_host(self.caps, r, proxies, proxy_groups) for r in rows]

    async def apply_batch(self, kind: str, plans: Sequence[Plan]) -> list[str]:
        """Carry out one or many plans in one call (see `nbzx.core.batch`); returns their hostids in order.

        `create`: one host.create with an array; `update`: one host.update with an array;
        `massupdate`: one host.massupdate of plans that all carry the same changes (an array
        host.update where the server's row has no host.massupdate).
        """
        ids = await self.resolve(*(p.changes for p in plans))
        if kind == "create":
            res = await self.call("host.create", [write_params(self.caps, p.changes, ids) for p in plans])
            return [str(h) for h in res["hostids"]]
        hostids = [str(p.hostid) for p in plans]
        if kind == "massupdate" and self.caps.host_massupdate:
            params = write_params(self.caps, plans[0].changes, ids)
            await self.call("host.massupdate", {"hosts": [{"hostid": h} for h in hostids], **params})
        else:
            rows = [{"hostid": p.hostid, **write_params(self.caps, p.changes, ids)} for p in plans]
            await self.call("host.update", rows)
        return hostids

    async def apply(self, plan: Plan) -> str | None:
        """Carry out one plan; returns the hostid (None after a delete)."""
        if plan.action in ("create", "update"):
            return (await self.apply_batch(plan.action, [plan]))[0]
        if plan.action == "delete":
            await self._delete("host.delete", plan.hostid)
            return None
        return plan.hostid

    async def _delete(self, method: str, objectid: str | None) -> None:
        """Delete one object; one that is already gone counts as deleted."""
        try:
            await self.call(method, [objectid])
        except ZabbixError as exc:
            if "does not exist" not in str(exc):
                raise


async def _none() -> list[Any]:
    return []
