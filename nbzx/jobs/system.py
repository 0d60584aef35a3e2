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
    removed: dict[str, int] = {}
    errors: list[str] = []
    for name, zabbix in engine.servers.items():  # one server that is down does not stop the others' cleanup
        try:
            removed[name] = await zabbix.cleanup_maintenance()
        except Exception as exc:
            job.note("maintenance_cleanup_errored", server=name, error=str(exc))
            errors.append(f"{name}: {type(exc).__name__}: {exc}" if engine.several else f"{type(exc).__name__}: {exc}")
    results: dict[str, object] = {"removed": sum(removed.values())}
    if engine.several:
        results["servers"] = removed
    job.note("maintenance_cleanup_done", **results)
    if errors:
        return await job.publish("errored", results=results, error="; ".join(errors))
    return await job.publish("completed", results=results)


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
    cfg = engine.cfg
    job = Job(producer, cfg, "settings_import", trigger="schedule", interval=cfg.zabbix.settings_import_interval)
    await job.publish("running")
    per_server: dict[str, dict[str, object]] = {}
    errors: list[str] = []
    problems: list[str] = []
    for name, zabbix in engine.servers.items():
        where = f"{name}: " if engine.several else ""
        try:
            await zabbix.refresh_settings(force=True)
        except Exception as exc:
            job.note("settings_import_errored", server=name, error=str(exc))
            errors.append(f"{where}{type(exc).__name__}: {exc}")
            continue
        groups = zabbix.proxy_groups if zabbix.caps.proxy_groups else None
        missing = missing_settings(cfg.host, zabbix.templates.keys(), zabbix.proxies.keys(), groups)
        per_server[name] = {
            "templates": len(zabbix.templates),
            "host_groups": len(zabbix.groups),
            "proxies": len(zabbix.proxies),
            "proxy_groups": len(zabbix.proxy_groups),
            "missing": sum(len(v) for v in missing.values()),
        }
        job.note("settings_import_done", server=name, **per_server[name])
        if missing:
            job.note("settings_import_missing", server=name, missing=missing)
            what = "; ".join(f"{kind.replace('_', ' ')}: {', '.join(names)}" for kind, names in missing.items())
            problems.append(f"{where}{what}")
    results: dict[str, object] = dict(next(iter(per_server.values()))) if len(per_server) == 1 else {}
    if engine.several:
        results = {"servers": per_server, "missing": sum(int(str(r["missing"])) for r in per_server.values())}
    if errors:
        return await job.publish("errored", results=results, error="; ".join(errors))
    if problems:
        return await job.publish(
            "failed", results=results, error=f"the config names what Zabbix does not have: {' | '.join(problems)}"
        )
    return await job.publish("completed", results=results)
