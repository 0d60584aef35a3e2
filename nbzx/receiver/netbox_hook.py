"""Register the receiver in NetBox: one webhook plus one event rule, created or updated in place."""

from __future__ import annotations

from typing import Any

import pynetbox

from nbzx.common.config import Config
from nbzx.common.tls import verify_session

EVENT_TYPES = ["object_created", "object_updated", "object_deleted"]


def register_webhook(cfg: Config, url: str, name: str = "netbox-zabbix-stream") -> dict[str, Any]:
    """Point NetBox at `url` (idempotent: an existing webhook/rule of that name is updated)."""
    nb = pynetbox.api(cfg.netbox.url, token=cfg.secrets.netbox_token)
    verify_session(nb.http_session, cfg.netbox.ca_file, cfg.netbox.verify_tls, "netbox")
    hook_fields = {
        "name": name,
        "payload_url": url,
        "http_method": "POST",
        "http_content_type": "application/json",
        "secret": cfg.secrets.webhook_secret,
        "ssl_verification": cfg.netbox.verify_tls,
    }
    hook = nb.extras.webhooks.get(name=name)
    if hook is None:
        hook = nb.extras.webhooks.create(**hook_fields)
    else:
        hook.update(hook_fields)
    object_types = sorted(cfg.receiver.object_types)
    rule_fields = {
        "name": name,
        "object_types": object_types,
        "event_types": EVENT_TYPES,
        "action_type": "webhook",
        "action_object_type": "extras.webhook",
        "action_object_id": hook.id,
        "enabled": True,
    }
    rule = nb.extras.event_rules.get(name=name)
    if rule is None:
        rule = nb.extras.event_rules.create(**rule_fields)
    else:
        rule.update(rule_fields)
    return {"webhook_id": hook.id, "event_rule_id": rule.id, "url": url, "object_types": object_types}
