"""NetBox object -> `DesiredHost`. Pure: the object is a plain dict as NetBox's REST API returns it
(nested brief objects, `status` as {value, label}, `config_context` included).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from nbzx.common.config import (
    IPMI_AUTHTYPES,
    IPMI_PRIVILEGES,
    TLS_MODES,
    Config,
    HostConfig,
    InterfacesConfig,
    IpmiConfig,
    SnmpConfig,
    TlsConfig,
)
from nbzx.core.model import (
    AGENT,
    IPMI,
    JMX,
    OWNER_TAG,
    PSK_MACRO,
    SNMP,
    URL_TAG,
    DesiredHost,
    Interface,
    Macro,
)

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\}")
_UNSAFE_HOST_CHARS = re.compile(r"[^0-9A-Za-z_. \-]")
_INVENTORY_MODES = {"disabled": -1, "manual": 0, "automatic": 1}


class Skip(Exception):
    """The object maps to no host (out of scope, status mapped to delete, no primary IP...)."""

    def __init__(self, reason: str, *, delete: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delete = delete  # whether an existing host should go through the delete policy


def lookup(obj: Any, path: str) -> Any:
    """Follow a dotted path (`site.slug`, `custom_fields.env`) through nested dicts."""
    for part in path.split("."):
        if isinstance(obj, Mapping):
            obj = obj.get(part)
        else:
            return None
    return obj


def scalar(value: Any) -> str:
    """A NetBox value as text: choices by value, brief objects by name, None as ''."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        for key in ("value", "name", "display", "address"):
            if key in value and value[key] is not None:
                return str(value[key])
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(scalar(v) for v in value)
    return str(value)


def render(template: str, obj: Mapping[str, Any]) -> str:
    """Fill `{dotted.path}` placeholders from the object. Zabbix macros like `{$X}` are left as they are."""
    return PLACEHOLDER.sub(lambda m: scalar(lookup(obj, m.group(1))), template)


def render_all_or_nothing(template: str, obj: Mapping[str, Any]) -> str | None:
    """Like `render`, but None when any placeholder is empty ("NetBox/{tenant.name}" without a tenant)."""
    values = [scalar(lookup(obj, m.group(1))) for m in PLACEHOLDER.finditer(template)]
    return None if any(v == "" for v in values) else render(template, obj)


def safe_host_name(name: str, fallback: str) -> str:
    """A technical host name Zabbix accepts: [0-9A-Za-z_. -], at most 128 characters, never empty.

    Deterministic: the same NetBox name always gives the same technical name.
    """
    safe = _UNSAFE_HOST_CHARS.sub("_", name).strip(" ")
    if len(safe) > 128:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        safe = f"{safe[:119]}_{digest}"
    return safe or fallback


def _names(value: Any) -> set[str]:
    """Every way a rule may name a NetBox value: slug, name, value, label (a choice or, from NetBox
    4.7, a selection custom field: `{value, label}`), or the text itself."""
    if value is None:
        return set()
    if isinstance(value, list):
        return set().union(*(_names(v) for v in value)) if value else set()
    if isinstance(value, Mapping):
        return {str(value[k]) for k in ("slug", "name", "value", "label", "model") if value.get(k) is not None}
    return {scalar(value)}


_MATCH_PATHS = {
    "role": "role",
    "platform": "platform",
    "device_type": "device_type",
    "manufacturer": "device_type.manufacturer",
    "site": "site",
    "tenant": "tenant",
    "cluster": "cluster",
    "status": "status",
    "tag": "tags",
}


def matches(match: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    """True when every key of a rule's `match` fits the object (a list means any of)."""
    return match_failure(match, obj) is None


def match_failure(
    match: Mapping[str, Any], obj: Mapping[str, Any], extra: Mapping[str, set[str]] | None = None
) -> str | None:
    """The first key of a rule's `match` the object does not fit, said for a person; None when all fit.
    `extra` gives the names some keys have beyond the object itself (a region's parents)."""
    for key, wanted in match.items():
        path = _MATCH_PATHS.get(key, key)
        have = _names(lookup(obj, path)) | (extra or {}).get(key, set())
        want = {str(w) for w in (wanted if isinstance(wanted, list) else [wanted])}
        if not have & want:
            shown = ", ".join(sorted(have)) or "nothing"
            return f"{key} is {shown}, not {' or '.join(sorted(want))}"
    return None


def _primary_ip(obj: Mapping[str, Any], family: str) -> tuple[str, str]:
    """(address without prefix length, dns name) of the primary IP of the wanted family."""
    key = {"ipv4": "primary_ip4", "ipv6": "primary_ip6"}.get(family, "primary_ip")
    return ip_address(obj.get(key) or (obj.get("primary_ip4") or obj.get("primary_ip6") if family == "any" else None))


def ip_address(ip: Any) -> tuple[str, str]:
    """(address without prefix length, dns name) of a NetBox IP address object; empty when there is none."""
    if not isinstance(ip, Mapping) or not ip.get("address"):
        return "", ""
    return str(ip["address"]).split("/")[0], str(ip.get("dns_name") or "")


def _snmp_details(snmp: SnmpConfig | Mapping[str, Any], obj: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    s: Mapping[str, Any] = snmp if isinstance(snmp, Mapping) else _struct_dict(snmp)
    version = int(s.get("version", 2))
    details: dict[str, str] = {"version": str(version), "bulk": "1" if s.get("bulk", True) else "0"}
    if version in (1, 2):
        details["community"] = render(str(s.get("community", "{$SNMP_COMMUNITY}")), obj)
    else:
        levels = {"noAuthNoPriv": "0", "authNoPriv": "1", "authPriv": "2"}
        auth = {"MD5": "0", "SHA1": "1", "SHA224": "2", "SHA256": "3", "SHA384": "4", "SHA512": "5"}
        priv = {"DES": "0", "AES128": "1", "AES192": "2", "AES256": "3", "AES192C": "4", "AES256C": "5"}
        details.update(
            securityname=render(str(s.get("securityname", "")), obj),
            securitylevel=levels[str(s.get("securitylevel", "noAuthNoPriv"))],
            authprotocol=auth[str(s.get("authprotocol", "SHA1"))],
            authpassphrase=str(s.get("authpassphrase", "")),
            privprotocol=priv[str(s.get("privprotocol", "AES128"))],
            privpassphrase=str(s.get("privpassphrase", "")),
            contextname=str(s.get("contextname", "")),
        )
    return tuple(sorted(details.items()))


def _struct_dict(s: Any) -> dict[str, Any]:
    return {f: getattr(s, f) for f in s.__struct_fields__}


INTERFACE_TYPES = {"agent": AGENT, "1": AGENT, "snmp": SNMP, "2": SNMP, "ipmi": IPMI, "3": IPMI, "jmx": JMX, "4": JMX}


def _interfaces(cfg: InterfacesConfig, obj: Mapping[str, Any], context: Mapping[str, Any]) -> tuple[Interface, ...]:
    """The host's interfaces: the config context's `zabbix.interfaces` list when it has one, else the
    default interface (agent or SNMP) plus `interfaces.extra`. The first of each type is the main one;
    an interface whose address NetBox does not have (no primary or out-of-band IP) is left out."""
    from_context = context.get("interfaces")
    if isinstance(from_context, list) and from_context:
        specs = [s for s in from_context if isinstance(s, Mapping)]
    else:
        kind_name = "snmp" if cfg.snmp_when and matches(cfg.snmp_when, obj) else cfg.default
        specs = [*([] if kind_name == "none" else [{"type": kind_name}]), *cfg.extra]
    out: list[Interface] = []
    seen: set[int] = set()
    for spec in specs:
        iface = _interface(cfg, spec, obj)
        if iface is None:
            continue
        out.append(msgspec.structs.replace(iface, main=0 if iface.type in seen else 1))
        seen.add(iface.type)
    return tuple(sorted(out))


def _interface(cfg: InterfacesConfig, spec: Mapping[str, Any], obj: Mapping[str, Any]) -> Interface | None:
    """One interface from its spec (see `InterfacesConfig.extra`), or None without an address."""
    type_name = str(spec.get("type", "agent")).lower()
    if type_name not in INTERFACE_TYPES:
        raise ValueError(f"interface type {type_name!r} is not one of agent, snmp, ipmi, jmx")
    kind = INTERFACE_TYPES[type_name]
    if str(spec.get("address", "primary")) == "oob":
        ip, dns = ip_address(obj.get("oob_ip"))
    else:
        ip, dns = _primary_ip(obj, cfg.ip_family)
    use_dns = bool(spec.get("use_dns", cfg.use_dns))
    if spec.get("ip"):  # a fixed address from the config context
        ip, use_dns = str(spec["ip"]), False
    elif not ip and not (use_dns and dns):
        return None
    default_port = {AGENT: cfg.agent_port, SNMP: cfg.snmp.port, IPMI: cfg.ipmi_port, JMX: cfg.jmx_port}[kind]
    details = _snmp_details({**_struct_dict(cfg.snmp), **(spec.get("snmp") or {})}, obj) if kind == SNMP else ()
    return Interface(
        type=kind,
        ip=ip,
        dns=dns if use_dns or cfg.use_dns else "",
        useip=0 if use_dns and dns else 1,
        port=str(spec.get("port") or default_port),
        details=details,
    )


def secret_digest(value: str) -> str:
    """The hash we keep in a secret macro's description to know when to push it again."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _context_list(context: Mapping[str, Any], key: str) -> list[str]:
    value = context.get(key)
    return [str(v) for v in value] if isinstance(value, list) else []


def managed_names(host: HostConfig) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Tag names, templates and macros our configuration can produce on any host."""
    tags = frozenset([*host.tags.fields, *host.tags.extra])
    templates = frozenset(t for rule in host.templates for t in rule.templates)
    macros = frozenset(host.macros)
    return tags, templates, macros


def _as_chassis(obj: Mapping[str, Any], host_key: str) -> Mapping[str, Any]:
    """A virtual-chassis member seen as the chassis: the master stands for it under the chassis's
    name, the other members have no host of their own (their events are keyed to the master)."""
    vc = obj.get("virtual_chassis")
    if not isinstance(vc, Mapping):
        return obj
    master = vc.get("master")
    master_id = master.get("id") if isinstance(master, Mapping) else None
    if master_id is None:
        return obj  # a chassis without a master: every member stays its own host
    if f"dcim.device:{master_id}" != host_key:
        raise Skip(f"member of virtual chassis {vc.get('name')!r}, which is synced as its master")
    return {**obj, "name": vc.get("name") or obj.get("name")}


def map_host(obj: Mapping[str, Any], host_key: str, cfg: Config, netbox_url: str = "") -> DesiredHost:
    """The desired Zabbix host for one NetBox device or VM. Raises `Skip` when there is none."""
    host = cfg.host
    is_vm = host_key.startswith("virtualization.")
    scope = cfg.scope.virtual_machines if is_vm else cfg.scope.devices
    if not scope.enabled:
        raise Skip(f"{'virtual machines' if is_vm else 'devices'} are out of scope")
    status_value = scalar(obj.get("status")) or "active"
    mapped = host.status.get(status_value, "disabled")
    if mapped == "delete":
        raise Skip(f"status {status_value!r} maps to delete")
    if cfg.receiver.virtual_chassis_as_one_host and not is_vm:
        obj = _as_chassis(obj, host_key)
    ip, _dns = _primary_ip(obj, host.interfaces.ip_family)
    if scope.require_primary_ip and not ip:
        raise Skip("no primary IP and require_primary_ip is set")

    context = obj.get("config_context") if host.use_config_context else None
    zctx: Mapping[str, Any] = (context or {}).get("zabbix") or {} if isinstance(context, Mapping) else {}
    if not isinstance(zctx, Mapping):
        zctx = {}

    name = render(host.name, obj)
    fallback = host_key.replace(":", "-").replace(".", "-")
    rendered = (render_all_or_nothing(g, obj) for g in [*host.groups, *_context_list(zctx, "groups")])
    groups = {g.strip().strip("/") for g in rendered if g and g.strip().strip("/")} or {host.fallback_group}
    templates = {t for rule in host.templates if matches(rule.match, obj) for t in rule.templates}
    templates |= set(_context_list(zctx, "templates"))

    tags: dict[tuple[str, str], None] = {(OWNER_TAG, host_key): None}
    if netbox_url:
        tags[(URL_TAG, netbox_url)] = None
    if host.tags.from_netbox_tags:
        for t in obj.get("tags") or []:
            if isinstance(t, Mapping) and t.get("name"):
                tags[("netbox:tag", str(t["name"]))] = None
    for tag_name, path in host.tags.fields.items():
        tags[(tag_name, scalar(lookup(obj, path)))] = None
    for tag_name, tmpl in host.tags.extra.items():
        tags[(tag_name, render(tmpl, obj))] = None
    ctx_tags = zctx.get("tags")
    if isinstance(ctx_tags, Mapping):
        for tag_name, value in ctx_tags.items():
            tags[(str(tag_name), render(str(value), obj))] = None

    tls = _tls(host.tls, zctx, obj)
    macros = [
        # A secret comes from the environment as it is: rendering could change a value with braces in it.
        Macro(
            macro=m,
            value=spec.value if spec.secret else render(spec.value, obj),
            secret=spec.secret,
            description=spec.description,
        )
        for m, spec in host.macros.items()
    ]
    ctx_macros = zctx.get("macros")
    if isinstance(ctx_macros, Mapping):
        macros += [Macro(macro=str(m), value=scalar(v)) for m, v in ctx_macros.items()]
    if tls.get("tls_psk"):
        digest = psk_digest(tls["tls_psk_identity"], tls["tls_psk"])
        macros.append(Macro(macro=PSK_MACRO, value=digest, description="nbzx: tells when the PSK changed"))

    inventory_mode = _INVENTORY_MODES[host.inventory.mode]
    inventory = (
        tuple(sorted((f, render(t, obj)) for f, t in host.inventory.fields.items())) if inventory_mode != -1 else ()
    )

    tag_names, managed_templates, managed_macros = managed_names(host)
    proxy, proxy_group = _monitored_by(zctx, host, obj)
    return DesiredHost(
        host_key=host_key,
        host=safe_host_name(name, fallback),
        name=render(host.visible_name, obj).strip() or name or fallback,
        status=0 if mapped in ("enabled", "maintenance") else 1,
        groups=tuple(sorted(groups)),
        templates=tuple(sorted(templates)),
        interfaces=_interfaces(host.interfaces, obj, zctx),
        tags=tuple(sorted(tags)),
        macros=tuple(sorted({m.macro: m for m in macros}.values())),
        inventory_mode=inventory_mode,
        inventory=inventory,
        description=render(host.description, obj),
        proxy=proxy,
        proxy_group=proxy_group,
        **_ipmi(host.interfaces.ipmi, zctx, obj),
        **tls,
        maintenance=mapped == "maintenance" or bool(_names(obj.get("tags")) & set(host.maintenance.tags)),
        managed_tag_names=tag_names | {str(k) for k in (ctx_tags or {})}
        if isinstance(ctx_tags, Mapping)
        else tag_names,
        managed_templates=managed_templates | set(_context_list(zctx, "templates")),
        managed_macros=managed_macros
        | {PSK_MACRO}
        | ({str(k) for k in ctx_macros} if isinstance(ctx_macros, Mapping) else set()),
        managed_group_prefixes=tuple(host.managed_group_prefixes),
        authoritative=frozenset(host.authoritative),
    )


def _ipmi(cfg: IpmiConfig, zctx: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, Any]:
    """The host's IPMI access: the config context's `zabbix.ipmi` (authtype, privilege, username) over
    the config; the password only from the config (the environment), never from NetBox."""
    raw = zctx.get("ipmi")
    ctx: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    authtype = str(ctx.get("authtype", cfg.authtype)).lower()
    privilege = str(ctx.get("privilege", cfg.privilege)).lower()
    if authtype not in IPMI_AUTHTYPES:
        raise ValueError(f"zabbix.ipmi.authtype {authtype!r}: one of {', '.join(IPMI_AUTHTYPES)}")
    if privilege not in IPMI_PRIVILEGES:
        raise ValueError(f"zabbix.ipmi.privilege {privilege!r}: one of {', '.join(IPMI_PRIVILEGES)}")
    return {
        "ipmi_authtype": IPMI_AUTHTYPES[authtype],
        "ipmi_privilege": IPMI_PRIVILEGES[privilege],
        "ipmi_username": render(str(ctx.get("username", cfg.username)), obj),
        "ipmi_password": cfg.password,
    }


def _tls(cfg: TlsConfig, zctx: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, Any]:
    """The host's agent encryption: the config context's `zabbix.tls` over the config. A PSK is
    picked by name (`psk`, default the one of `psk_env`) among the keys the environment gave."""
    raw = zctx.get("tls")
    ctx: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    connect = str(ctx.get("connect", cfg.connect)).lower()
    accept_raw = ctx.get("accept", cfg.accept)
    accept = [str(a).lower() for a in (accept_raw if isinstance(accept_raw, list) else [accept_raw])]
    for mode in (connect, *accept):
        if mode not in TLS_MODES:
            raise ValueError(f"zabbix.tls: {mode!r} is not one of {', '.join(TLS_MODES)}")
    if not accept:
        raise ValueError("zabbix.tls.accept: name at least one of unencrypted, psk, cert")
    out: dict[str, Any] = {
        "tls_connect": TLS_MODES[connect],
        "tls_accept": sum({TLS_MODES[a] for a in accept}),
        "tls_issuer": "",
        "tls_subject": "",
    }
    if "cert" in (connect, *accept):
        out["tls_issuer"] = render(str(ctx.get("issuer", cfg.issuer)), obj)
        out["tls_subject"] = render(str(ctx.get("subject", cfg.subject)), obj)
    if "psk" in (connect, *accept):
        name = str(ctx.get("psk", ""))
        if name not in cfg.keys:
            known = ", ".join(sorted(k for k in cfg.keys if k)) or "none"
            why = f"host.tls.psks has no key named {name!r} (named: {known})" if name else "host.tls.psk_env is not set"
            raise ValueError(f"zabbix.tls: PSK encryption needs a key, and {why}")
        identity = render(str(ctx.get("psk_identity", cfg.psk_identity)), obj).strip()
        if not identity:
            raise ValueError("zabbix.tls: PSK encryption needs a psk_identity (host.tls.psk_identity)")
        out["tls_psk_identity"], out["tls_psk"] = identity, cfg.keys[name]
    return out


def psk_digest(identity: str, key: str) -> str:
    """The value of `PSK_MACRO` for a host with this PSK identity and key."""
    return f"sha256:{secret_digest(identity + chr(0) + key)}"


def _monitored_by(zctx: Mapping[str, Any], host: HostConfig, obj: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(proxy, proxy group), the object's config context before the global config. Both may be set:
    the planner keeps the group where Zabbix has proxy groups and the proxy where it has not."""
    if zctx.get("proxy"):
        return render(str(zctx["proxy"]), obj), None
    proxy = render(host.proxy, obj) if host.proxy else None
    if zctx.get("proxy_group"):
        return proxy, render(str(zctx["proxy_group"]), obj)
    return proxy, host.proxy_group


def is_ours(tag_name: str, desired: DesiredHost) -> bool:
    """Whether a Zabbix tag name is one we manage on this host."""
    return tag_name.startswith("netbox:") or tag_name in desired.managed_tag_names or "tags" in desired.authoritative


def group_is_managed(group: str, prefixes: Iterable[str], authoritative: bool) -> bool:
    """Whether a host group is ours to add and remove."""
    return authoritative or any(group.startswith(p) or group == p.rstrip("/") for p in prefixes)
