"""What a settled round tells others: host statuses and console job records (for the console and
write-back's memory), and write-back to NetBox (DESIGN §10). Best effort: never holding delivery back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from nbzx.common.config import Config, zabbix_servers
from nbzx.common.kafka import Producer
from nbzx.common.logging import get_logger
from nbzx.core.status import host_sync_record
from nbzx.core.writeback import write_back
from nbzx.delivery.decode import Work
from nbzx.engine.netbox import NetBox
from nbzx.engine.netbox_write import apply_write_backs
from nbzx.schemas.messages import encode

log = get_logger(component="consumer")


async def publish_statuses(cfg: Config, producer: Producer, work: Work, dead_keys: set[str]) -> None:
    """Host statuses and console host_sync job records (a status not stored is refreshed by the key's
    next sync)."""
    sends = [(cfg.kafka.topics.host_status, st.host_key, encode(st)) for st in work.statuses]
    for st in work.statuses:
        for req in work.host_syncs.get(st.host_key, []):
            assert req.job_id is not None
            record = host_sync_record(req.job_id, req.user, req.produced_at, st, st.host_key in dead_keys)
            sends.append((cfg.kafka.topics.jobs, req.job_id, encode(record)))
    if not sends:
        return
    outcomes = await asyncio.gather(*(producer.send(*s) for s in sends), return_exceptions=True)
    lost = sum(isinstance(o, BaseException) for o in outcomes)
    if lost:
        log.warning("host_status_not_stored", records=lost, of=len(sends))


async def write_back_outcomes(cfg: Config, netbox: NetBox, work: Work) -> None:
    """Opt-in write-back to NetBox of the outcomes that changed, after the round is settled."""
    wb, now = cfg.netbox.write_back, datetime.now(UTC)
    urls = {name: server.ui_url for name, server in zabbix_servers(cfg).items()}
    writes = [
        w
        for r, state, previous in work.synced
        if (w := write_back(r, state, previous, wb, urls, now)).journal or w.fields
    ]
    if not writes:
        return
    try:
        await apply_write_backs(netbox, writes)
    except Exception:  # NetBox's refusals are handled there; anything else must not stop consuming
        log.exception("write_back_crashed", writes=len(writes))
