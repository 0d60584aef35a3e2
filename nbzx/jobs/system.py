"""The system jobs the control loop runs on their own intervals, as the NetBox Zabbix plugin's do:
`maintenance_cleanup` (expired maintenance windows we own) and `settings_import` (what Zabbix has,
checked against what the config names).
"""

from __future__ import annotations

from collections.abc import Collection

from nbzx.common.config import HostConfig
from nbzx.common.kafka import Producer
from nbzx.engine.sync import SyncEngine
from nbzx.jobs.records import Job
from nbzx.schemas.messages import JobRecord


async def maintenance_cleanup(engine: SyncEngine, producer: Producer) -> JobRecord:
    """The `maintenance_cleanup` job: remove the expired maintenance windows we own."""
    cfg = engine.cfg
    job = Job(producer, cfg, "maintenance_cleanup", trigger="schedule", interval=cfg.host.maintenance.cleanup_interval)
    await job.publish("running")
    try:
        removed = await engine.zabbix.cleanup_maintenance()
    except Exception as exc:
        job.note("maintenance_cleanup_errored", error=str(exc))
        return await job.publish("errored", error=f"{type(exc).__name__}: {exc}")
    job.note("maintenance_cleanup_done", removed=removed)
    return await job.publish("completed", results={"removed": removed})


def missing_settings(
    host: HostConfig, templates: Collection[str], proxies: Collection[str], proxy_groups: Collection[str] | None
) -> dict[str, list[str]]:
    """What the config names that Zabbix does not have (`proxy_groups` None: a Zabbix without them).

    Only the config's own names: templates, proxies and groups named in config contexts show up as
    permanent sync errors of the hosts that use them instead.
    """
    wanted_templates = {t for rule in host.templates for t in rule.templates}
    missing = {"templates": sorted(wanted_templates - set(templates))}
    # A templated proxy name ("{site.slug}-proxy") depends on the host: only a plain one can be checked.
    if host.proxy and "{" not in host.proxy and host.proxy not in proxies:
        missing["proxies"] = [host.proxy]
    if proxy_groups is not None and host.proxy_group and host.proxy_group not in proxy_groups:
        missing["proxy_groups"] = [host.proxy_group]
    return {k: v for k, v in missing.items() if v}


async def settings_import(engine: SyncEngine, producer: Producer) -> JobRecord:
    """The `settings_import` job: reload templates, host groups and proxies from Zabbix (every consumer
    also does this on its own cache interval) and fail, naming them, when the config names ones that
    do not exist — before the hosts that need them fail one by one."""
    cfg, zabbix = engine.cfg, engine.zabbix
    job = Job(producer, cfg, "settings_import", trigger="schedule", interval=cfg.zabbix.settings_import_interval)
    await job.publish("running")
    try:
        await zabbix.refresh_settings(force=True)
    except Exception as exc:
        job.note("settings_import_errored", error=str(exc))
        return await job.publish("errored", error=f"{type(exc).__name__}: {exc}")
    groups = zabbix.proxy_groups if zabbix.caps.proxy_groups else None
    missing = missing_settings(cfg.host, zabbix.templates.keys(), zabbix.proxies.keys(), groups)
    results: dict[str, object] = {
        "templates": len(zabbix.templates),
        "host_groups": len(zabbix.groups),
        "proxies": len(zabbix.proxies),
        "proxy_groups": len(zabbix.proxy_groups),
        "missing": sum(len(v) for v in missing.values()),
    }
    job.note("settings_import_done", **results)
    if missing:
        what = "; ".join(f"{kind.replace('_', ' ')}: {', '.join(names)}" for kind, names in missing.items())
        job.note("settings_import_missing", missing=missing)
        return await job.publish("failed", results=results, error=f"the config names what Zabbix does not have: {what}")
    return await job.publish("completed", results=results)
