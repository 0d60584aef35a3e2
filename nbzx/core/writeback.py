"""Write-back to NetBox (DESIGN §10): what one sync puts on its NetBox object. Pure.

Only a change of outcome writes: a journal entry when a host is created, removed, starts failing (for
good: a failure still being retried writes nothing, or a Zabbix outage would write one per host) or
recovers; the custom fields only when the hostid or the state differ from what the object holds. So
the webhook NetBox sends for our own custom-field write ends in a no-op sync that writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from msgspec import Struct

from nbzx.common.config import WriteBackConfig
from nbzx.core.planner import SyncResult
from nbzx.schemas.messages import SyncState
from nbzx.schemas.objects import ENDPOINTS

JournalKind = Literal["info", "success", "warning", "danger"]
NOT_SYNCED: frozenset[str] = frozenset({"failed", "conflict", "skipped", "removed"})


class JournalEntry(Struct, frozen=True, kw_only=True):
    """One NetBox journal entry on a host key's object."""

    host_key: str
    kind: JournalKind
    comments: str  # Markdown, as NetBox renders it


class WriteBack(Struct, frozen=True, kw_only=True):
    """What to write to one NetBox object after a sync (nothing, when both are None)."""

    host_key: str
    state: SyncState | None
    journal: JournalEntry | None = None
    fields: dict[str, Any] | None = None  # custom field name -> value


def sync_state(r: SyncResult, retrying: bool) -> SyncState | None:
    """The settled outcome of one sync; None while a failure is being retried, or when the key has
    neither an object to sync nor a host in Zabbix."""
    if r.result == "error":
        return None if retrying else "failed"
    if r.result == "conflict":
        return "conflict"
    if r.removes:
        return "removed"
    if r.action == "skip":
        return "skipped"
    if r.hostid is None:
        return None
    return "in_sync"


def journal_entry(
    r: SyncResult, state: SyncState | None, previous: SyncState | None, zabbix_urls: Mapping[str, str]
) -> JournalEntry | None:
    """The entry for an outcome that changed; `previous` is None when it is not known (nothing is
    written then that could only repeat what an earlier entry said: recovered, skipped). `zabbix_urls`:
    each server's frontend, by name, for the links to its host."""
    if state is None or not r.in_netbox:
        return None
    link = _host_link(r, zabbix_urls)
    if state == "in_sync" and r.action == "create":
        return _entry(r, "info", f"Created in Zabbix as {link}.{_changed(r)}")
    if state == previous:
        return None
    if state == "in_sync" and previous in NOT_SYNCED:
        return _entry(r, "success", f"In sync with Zabbix again ({link}), was {previous}.{_changed(r)}")
    if state == "removed" and r.action != "noop":
        how = "deleted" if r.action == "delete" else "archived or disabled by the delete policy"
        return _entry(r, "warning", f"Zabbix host {link} {how}: {r.reason}.")
    if state == "failed":
        return _entry(r, "danger", f"Sync to Zabbix failed: {r.error}")
    if state == "conflict":
        return _entry(r, "warning", f"Not synced to Zabbix: {r.reason}.")
    if state == "skipped" and previous is not None:
        return _entry(r, "warning", f"No longer synced to Zabbix: {r.reason}.")
    return None


def field_values(r: SyncResult, state: SyncState | None, cfg: WriteBackConfig, now: datetime) -> dict[str, Any] | None:
    """The custom fields to write, or None when the object already holds them, was not read, or NetBox
    does not have the fields (an object carries every custom field of its type, null when unset: one
    missing was never created, and writing it would be refused on every sync)."""
    if state is None or r.custom_fields is None or cfg.state_field not in r.custom_fields:
        return None
    wanted: dict[str, Any] = {cfg.state_field: state}
    if r.hostid:
        wanted[cfg.hostid_field] = int(r.hostid)
    elif r.action == "delete" and r.result == "ok":
        wanted[cfg.hostid_field] = None
    if all(r.custom_fields.get(name) == value for name, value in wanted.items()):
        return None
    return {**wanted, cfg.time_field: now.isoformat(timespec="seconds")}


def write_back(
    r: SyncResult,
    state: SyncState | None,
    previous: SyncState | None,
    cfg: WriteBackConfig,
    zabbix_urls: Mapping[str, str],
    now: datetime,
) -> WriteBack:
    """Everything one sync, whose settled state is `state` (`sync_state`, as its host status carries
    it), writes back to NetBox under `cfg`; nothing for a key that is not a host's (a dependency's
    fan-out that failed is not news for that object)."""
    if r.host_key.rpartition(":")[0] not in ENDPOINTS:
        state = None
    return WriteBack(
        host_key=r.host_key,
        state=state,
        journal=journal_entry(r, state, previous, zabbix_urls) if cfg.journal else None,
        fields=field_values(r, state, cfg, now) if cfg.custom_fields else None,
    )


def adopted_entry(r: SyncResult, zabbix_urls: Mapping[str, str]) -> JournalEntry:
    """The entry for a host adoption took over (its first sync is an update, which says nothing by itself)."""
    return _entry(
        r, "info", f"Adopted: Zabbix host {_host_link(r, zabbix_urls)} is now kept in step with NetBox.{_changed(r)}"
    )


def _entry(r: SyncResult, kind: JournalKind, text: str) -> JournalEntry:
    return JournalEntry(host_key=r.host_key, kind=kind, comments=f"**netbox-zabbix-stream**: {text}")


def _host_link(r: SyncResult, zabbix_urls: Mapping[str, str]) -> str:
    """The host and a link to it; with several servers, on each server that keeps it, named."""
    name = f"`{r.host}`" if r.host else "host"
    kept = r.servers if len(zabbix_urls) > 1 and r.servers else {"": r.hostid} if r.hostid else {}
    if not kept:
        return name
    first = next(iter(zabbix_urls.values()), "")
    links = []
    for server, hostid in kept.items():
        url = f"{zabbix_urls.get(server, first)}/zabbix.php?action=host.edit&hostid={hostid}"
        links.append(f"{f'on {server}: ' if server else ''}[hostid {hostid}]({url})")
    return f"{name} ({', '.join(links)})"


def _changed(r: SyncResult) -> str:
    return f" Changed: {', '.join(r.changed)}." if r.changed else ""
