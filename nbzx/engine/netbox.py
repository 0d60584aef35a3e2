"""The NetBox edge: reads with pynetbox (blocking, so in a bounded thread pool), many ids per call."""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import msgspec
import pynetbox
import requests
from prometheus_client import Counter

from nbzx.common.config import Config, ScopeRule
from nbzx.common.logging import get_logger
from nbzx.common.retry import retry
from nbzx.common.tls import verify_session, warn_unverified
from nbzx.core.fields import context_needs, read_fields
from nbzx.core.model import OUT_OF_SCOPE, Found
from nbzx.core.routing import Geography, Place
from nbzx.schemas.objects import ENDPOINTS, list_path, object_url, split_key

log = get_logger(component="netbox")
HEDGED = Counter("nbzx_netbox_hedged_reads_total", "Small NetBox reads sent again after HEDGE_S without an answer")
T = TypeVar("T")

# A read of a few objects that has not answered in HEDGE_S is sent again on another connection (so to
# another NetBox worker: keep-alive pins a connection to one), and the first answer wins. Here one in
# twelve single-device reads took 0.5-1 s while the rest took 0.1-0.25 s: the slow ones waited
# for a busy worker.
HEDGE_S = 0.3
HEDGE_MAX_IDS = 20
CHUNK = 250  # ids per request: fewer round trips, and the query string stays under ~3 KB
PAGE = 1000  # NetBox's default MAX_PAGE_SIZE
CHANGES = "core/object-changes/"
CHANGE_FIELDS = (
    "id,time,user_name,request_id,action,changed_object_type,changed_object_id,prechange_data,postchange_data"
)
GEOGRAPHY_TTL_S = 60.0  # and dropped at once when a site, region or site group changes (fan-out)


class NetBoxError(Exception):
    """A NetBox read failed; `transient` ones (unreachable, 5xx, timeouts) are retried."""

    def __init__(self, message: str, *, transient: bool, status: int = 0) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


def merge_filters(scope: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Scope filter plus another; a key in both gets both values (NetBox ANDs repeated `tag`)."""
    out = dict(scope)
    for key, value in extra.items():
        out[key] = [*_as_list(out[key]), *_as_list(value)] if key in out else value
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class NetBox:
    """Batched, scope-aware reads of devices and VMs."""

    def __init__(self, cfg: Config) -> None:
        self._cfg = cfg
        self.api = pynetbox.api(cfg.netbox.url, token=cfg.secrets.netbox_token or None)
        pool = {"pool_connections": cfg.netbox.threads, "pool_maxsize": cfg.netbox.threads}
        verify_session(self.api.http_session, cfg.netbox.ca_file, cfg.netbox.verify_tls, "netbox", **pool)
        warn_unverified(log, "netbox", cfg.netbox.url, cfg.netbox.verify_tls)
        self._pool = ThreadPoolExecutor(cfg.netbox.threads, thread_name_prefix="netbox")
        self._headers = {"Accept": "application/json"}
        if token := cfg.secrets.netbox_token:
            # v2 tokens (NetBox >= 4.5, "nbt_<key>.<secret>") are Bearer tokens; v1 ones use "Token".
            self._headers["Authorization"] = f"{'Bearer' if token.startswith('nbt_') else 'Token'} {token}"
        self.requests = 0
        self.fields = read_fields(cfg)  # what mapping needs, not all NetBox would serialise
        self._fields = ",".join(self.fields)
        self._geography: tuple[float, Geography] | None = None
        self._geography_lock = asyncio.Lock()

    def close(self) -> None:
        """Stop the thread pool."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def base_url(self) -> str:
        return self._cfg.netbox.url.rstrip("/")

    def object_url(self, host_key: str) -> str:
        """The NetBox UI address of a host's object (kept in the `netbox:url` tag)."""
        return object_url(self.base_url, host_key)

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        except pynetbox.RequestError as exc:
            status = getattr(exc.req, "status_code", 0)
            raise NetBoxError(
                f"NetBox answered {status}: {exc.error}", transient=status >= 500 or status == 429, status=status
            ) from exc
        except requests.exceptions.SSLError as exc:
            # Transient like any unreachable NetBox (events wait, nothing is lost), but said plainly.
            ca = self._cfg.netbox.ca_file
            trust = f"netbox.ca_file ({ca})" if ca else "the system's CAs (set netbox.ca_file for a private CA)"
            raise NetBoxError(
                f"the certificate of NetBox at {self.base_url} is not signed by {trust}: {exc}", transient=True
            ) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise NetBoxError(f"NetBox unreachable at {self.base_url}: {exc!r}", transient=True) from exc

    async def _hedged(self, read: Callable[[], Awaitable[T]]) -> T:
        """`read()`, and a second `read()` if the first has not answered within `HEDGE_S`: the first
        answer wins (an error only when both fail; the first one's)."""
        first = asyncio.ensure_future(read())
        done, _ = await asyncio.wait({first}, timeout=HEDGE_S)
        if done:
            return first.result()
        HEDGED.inc()
        second = asyncio.ensure_future(read())
        racing = {first, second}
        while racing:
            done, racing = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is None:
                    for loser in racing:
                        loser.cancel()
                    return task.result()
        return first.result()  # both failed: raises the first's error

    async def _filtered(self, fn: Any, object_type: str, *args: Any) -> Any:
        """`fn` with the scope filter applied; NetBox refusing the filter is a configuration error."""
        try:
            return await self._run(fn, object_type, *args)
        except NetBoxError as exc:
            if exc.status != 400:
                raise
            kind = "devices" if object_type == "dcim.device" else "virtual_machines"
            # Usually the filter names an object that no longer exists (a deleted site or tag). Every
            # host would fail the same way: keep the messages (transient, retried) until it is fixed.
            raise NetBoxError(
                f"NetBox rejected a filter on {kind}: check scope.{kind}.filter {self._scope(object_type).filter}"
                f" (and a reconcile's --scope filter, if one was given): {exc}",
                transient=True,
                status=400,
            ) from exc

    def _page(self, object_type: str, params: dict[str, Any]) -> dict[str, Any]:
        """One page of a listing as plain JSON. pynetbox's Record objects, turned back into dicts, give
        the same data at a quarter of a millisecond of CPU per device: too much at 20,000 devices."""
        body: dict[str, Any] = self._send("GET", list_path(object_type), params=params)
        return body

    def _params(self, filters: dict[str, Any]) -> dict[str, Any]:
        return {**filters, "fields": self._fields}

    async def _complete(self, object_type: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`rows` with those whose config context names a field that was not read read again in full."""
        short = [int(r["id"]) for r in rows if context_needs(r, self.fields)]
        if not short:
            return rows
        full: dict[int, dict[str, Any]] = {}
        for i in range(0, len(short), CHUNK):
            chunk = short[i : i + CHUNK]
            page = await self._run(self._page, object_type, {"id": chunk, "limit": len(chunk)})
            full.update({int(r["id"]): r for r in page["results"]})
        return [full.get(int(r["id"]), r) for r in rows]

    def _send(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        self.requests += 1
        resp = self.api.http_session.request(
            method,
            f"{self.base_url}/api/{path}",
            params=params,
            json=body,
            headers=self._headers if body is None else {**self._headers, "Content-Type": "application/json"},
            timeout=self._cfg.netbox.timeout_s,
        )
        if not resp.ok:
            raise pynetbox.RequestError(resp)
        return msgspec.json.decode(resp.content) if resp.content else None  # 2-3x faster than json

    async def send(self, method: str, path: str, body: Any = None) -> Any:
        """One API request (`path` under /api/, e.g. "extras/journal-entries/"), its JSON answer."""
        return await self._run(self._send, method, path, body)

    def _list(self, object_type: str, ids: list[int], filters: dict[str, Any]) -> list[dict[str, Any]]:
        # One page for the whole chunk: NetBox's default page is 50, which would double the round trips.
        rows: list[dict[str, Any]] = self._page(object_type, {**self._params(filters), "id": ids, "limit": len(ids)})[
            "results"
        ]
        return rows

    def _scope(self, object_type: str) -> ScopeRule:
        s = self._cfg.scope
        return s.devices if object_type == "dcim.device" else s.virtual_machines

    async def objects(self, host_keys: Iterable[str]) -> dict[str, Found]:
        """host key -> the object (in scope), OUT_OF_SCOPE, or None when NetBox no longer has it.

        One filtered call per type and chunk of ids with the scope filter; the ids it did not
        return are asked again without the filter to tell "out of scope" from "deleted".
        """
        by_type: dict[str, list[int]] = {}
        for key in set(host_keys):
            object_type, object_id = split_key(key)
            if object_type in ENDPOINTS:
                by_type.setdefault(object_type, []).append(object_id)
        out: dict[str, Found] = {}
        jobs = []
        for object_type, ids in by_type.items():
            ids.sort()
            for i in range(0, len(ids), CHUNK):
                jobs.append((object_type, ids[i : i + CHUNK]))
        small = sum(len(chunk) for _, chunk in jobs) <= HEDGE_MAX_IDS  # one change's read: latency counts

        async def read(object_type: str, ids: list[int]) -> list[dict[str, Any]]:
            flt = self._scope(object_type).filter
            rows: list[dict[str, Any]] = await self._filtered(self._list, object_type, ids, flt)
            return rows

        results = await asyncio.gather(
            *(self._hedged(functools.partial(read, t, c)) if small else read(t, c) for t, c in jobs)
        )
        for (object_type, chunk), listed in zip(jobs, results, strict=True):
            rows = await self._complete(object_type, listed)
            found = {int(r["id"]): r for r in rows}
            for object_id in chunk:
                out[f"{object_type}:{object_id}"] = found.get(object_id)
            missing = [i for i in chunk if i not in found]
            if missing and self._scope(object_type).filter:
                exists = await self._run(self._list, object_type, missing, {})
                for r in exists:
                    out[f"{object_type}:{int(r['id'])}"] = OUT_OF_SCOPE
        return out

    async def all_objects(
        self, object_type: str, extra_filter: dict[str, Any] | None = None, *, scoped: bool = True
    ) -> list[dict[str, Any]]:
        """Every in-scope object of a type (every object at all, `scoped=False`)."""
        return [row async for page in self.pages(object_type, extra_filter, scoped=scoped) for row in page]

    async def pages(
        self, object_type: str, extra_filter: dict[str, Any] | None = None, *, scoped: bool = True
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every in-scope object of a type, a page at a time as NetBox answers, in no set order: a
        reconcile maps each page and lets it go instead of holding the whole listing.

        Offset paging skips an object whenever one before it is deleted meanwhile, and reconcile would
        take the skipped one for an orphan. So: the first page by id, then the id range after it split
        into parts read in parallel (`netbox.threads` at a time), each by keyset paging (`id__gt`), which
        cannot skip anything.
        """
        if scoped and not self._scope(object_type).enabled:
            return
        scope = self._scope(object_type).filter if scoped else {}
        params = {**self._params(merge_filters(scope, extra_filter or {})), "ordering": "id"}
        first = await self._listing_page(object_type, {**params, "limit": PAGE})
        rows: list[dict[str, Any]] = first["results"]
        yield await self._complete(object_type, rows)
        if first["next"] is None:
            return
        newest = await self._filtered(self._page, object_type, {**params, "ordering": "-id", "limit": 1, "brief": 1})
        if not newest["results"]:
            return  # everything after the first page was deleted meanwhile
        lo, hi = int(rows[-1]["id"]), int(newest["results"][0]["id"])
        # More parts than threads: each ends sooner, so the last pages are not one thread's tail.
        parts = max(1, min(4 * self._cfg.netbox.threads, math.ceil((first["count"] - len(rows)) / PAGE)))
        bounds = [lo + (hi - lo) * i // parts for i in range(parts)] + [hi]
        queue: asyncio.Queue[list[dict[str, Any]] | BaseException | None] = asyncio.Queue()
        gate = asyncio.Semaphore(self._cfg.netbox.threads)

        async def part(after: int, upto: int) -> None:
            try:
                async with gate:
                    async for page in self._id_range(object_type, params, after, upto):
                        await queue.put(page)
            except BaseException as exc:  # handed to the reader, which raises it
                await queue.put(exc)
            finally:
                await queue.put(None)

        tasks = [asyncio.create_task(part(bounds[i], bounds[i + 1])) for i in range(parts)]
        try:
            running = len(tasks)
            while running:
                item = await queue.get()
                if item is None:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield await self._complete(object_type, item)
        finally:
            for t in tasks:
                t.cancel()

    async def _listing_page(self, object_type: str, params: dict[str, Any]) -> dict[str, Any]:
        """One page of a listing; a transient failure (a timeout while NetBox is busy serving the other
        pages, a restarting worker) is tried again twice, so one slow page does not fail a reconcile."""
        page: dict[str, Any] = await retry(
            lambda: self._filtered(self._page, object_type, params),
            retry_if=lambda e: isinstance(e, NetBoxError) and e.transient and e.status != 400,
            on_retry=lambda e, delay: log.warning("netbox_page_retry", error=str(e), retry_in_s=delay),
            base_s=1.0,
            max_s=5.0,
            attempts=3,
        )
        return page

    async def count(self, object_type: str, extra_filter: dict[str, Any] | None = None) -> int:
        """How many in-scope objects of a type there are (one brief request)."""
        if not self._scope(object_type).enabled:
            return 0
        params = {**merge_filters(self._scope(object_type).filter, extra_filter or {}), "limit": 1, "brief": 1}
        page = await self._filtered(self._page, object_type, params)
        return int(page["count"])

    async def _id_range(
        self, object_type: str, params: dict[str, Any], after: int, upto: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Objects with after < id <= upto, page by page."""
        while True:
            page = await self._listing_page(object_type, {**params, "id__gt": after, "id__lte": upto, "limit": PAGE})
            if page["results"]:
                yield page["results"]
            if page["next"] is None:
                return
            after = int(page["results"][-1]["id"])

    def _ids(self, object_type: str, filters: dict[str, Any]) -> list[int]:
        app, endpoint = ENDPOINTS[object_type]
        ep = getattr(getattr(self.api, app), endpoint)
        self.requests += 1
        return [int(r.id) for r in ep.filter(brief=True, **merge_filters(self._scope(object_type).filter, filters))]

    async def ids(self, object_type: str, filters: dict[str, Any]) -> list[int]:
        """Ids of the in-scope objects matching `filters` (paged by pynetbox)."""
        if not self._scope(object_type).enabled:
            return []
        result: list[int] = await self._run(self._ids, object_type, filters)
        return result

    async def assignment_owner(self, content_type_id: int, object_id: int) -> str | None:
        """The host key an IP assignment (numeric content type + interface id, as NetBox's snapshots
        have it) belongs to, or None."""
        ot = await self._run(self.api.core.object_types.get, content_type_id)
        if ot is None:
            return None
        kind = f"{ot.app_label}.{ot.model}"
        if kind == "dcim.interface":
            iface = await self._run(self.api.dcim.interfaces.get, object_id)
            return f"dcim.device:{iface.device.id}" if iface is not None else None
        if kind == "virtualization.vminterface":
            iface = await self._run(self.api.virtualization.interfaces.get, object_id)
            return f"virtualization.virtualmachine:{iface.virtual_machine.id}" if iface is not None else None
        return None

    async def newest_change_id(self) -> int:
        """The id of the newest object change in NetBox's change log (0 when it is empty). Needs the
        `core.view_objectchange` permission: without it NetBox answers 403 (a `NetBoxError`)."""
        page = await self.send("GET", f"{CHANGES}?ordering=-id&limit=1&fields=id")
        return int(page["results"][0]["id"]) if page["results"] else 0

    async def changes_after(self, after: int, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` object changes with an id above `after`, oldest first."""
        params = {"id__gt": after, "ordering": "id", "limit": limit, "fields": CHANGE_FIELDS}
        page = await self._run(self._send, "GET", CHANGES, params=params)
        rows: list[dict[str, Any]] = page["results"]
        return rows

    async def changes(self, ids: list[int]) -> list[dict[str, Any]]:
        """The object changes with these ids that NetBox shows now. Ids missing together (one open
        transaction) are asked for as one range each, not one by one."""
        runs: list[tuple[int, int]] = []
        for i in sorted(set(ids)):
            if runs and runs[-1][1] == i - 1:
                runs[-1] = (runs[-1][0], i)
            else:
                runs.append((i, i))
        wanted = set(ids)
        rows: list[dict[str, Any]] = []
        for lo, hi in runs:
            after = lo - 1
            while True:
                params = {"id__gt": after, "id__lte": hi, "ordering": "id", "limit": PAGE, "fields": CHANGE_FIELDS}
                page = await self._run(self._send, "GET", CHANGES, params=params)
                rows.extend(r for r in page["results"] if int(r["id"]) in wanted)
                if page["next"] is None or not page["results"]:
                    break
                after = int(page["results"][-1]["id"])
        return rows

    async def geography(self) -> Geography:
        """Sites with their region and site group, and both trees (for routes by region), read at most
        once a `GEOGRAPHY_TTL_S` unless `forget_geography` was called."""
        async with self._geography_lock:
            if self._geography is None or time.monotonic() - self._geography[0] > GEOGRAPHY_TTL_S:
                sites, regions, groups = await asyncio.gather(
                    self._run(self._everything, "dcim/sites/", "id,region,group"),
                    self._run(self._everything, "dcim/regions/", "id,slug,name,parent"),
                    self._run(self._everything, "dcim/site-groups/", "id,slug,name,parent"),
                )
                geo = Geography(
                    sites={int(s["id"]): (_id_of(s.get("region")), _id_of(s.get("group"))) for s in sites},
                    regions={int(r["id"]): _place(r) for r in regions},
                    site_groups={int(g["id"]): _place(g) for g in groups},
                )
                self._geography = (time.monotonic(), geo)
            return self._geography[1]

    def forget_geography(self) -> None:
        """A site, region or site group changed: the next route by region reads them again."""
        self._geography = None

    def _everything(self, path: str, fields: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            page = self._send("GET", path, params={"fields": fields, "limit": PAGE, "offset": len(rows)})
            rows.extend(page["results"])
            if page["next"] is None:
                return rows


def _id_of(ref: Any) -> int | None:
    return int(ref["id"]) if isinstance(ref, dict) and ref.get("id") is not None else None


def _place(row: dict[str, Any]) -> Place:
    return Place(slug=str(row.get("slug") or ""), name=str(row.get("name") or ""), parent=_id_of(row.get("parent")))
