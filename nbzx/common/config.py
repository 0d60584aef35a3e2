"""Configuration: one YAML file plus secrets from the environment, validated at start-up.

Errors name the key and the problem (``zabbix.rate_per_s: Expected `float` > 0.0``), so an
operator can fix a values file without reading code. Secrets are never read from the YAML file.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import limits
import msgspec
import msgspec.yaml
from msgspec import Meta, Struct, field

from nbzx.schemas.objects import DEPENDENCY_OBJECT_TYPES, HOST_OBJECT_TYPES

PositiveFloat = Annotated[float, Meta(gt=0)]
PositiveInt = Annotated[int, Meta(gt=0)]
# The largest webhook body the receiver takes: Kafka's producer and topic limits are set from it
# (nbzx/common/kafka.py), so an accepted body always fits in its event and in its dead letter.
MAX_BODY_BYTES = 1024 * 1024
Port = Annotated[int, Meta(ge=1, le=65535)]

# NetBox's own job intervals, in minutes.
RECONCILE_INTERVALS = (1, 5, 15, 30, 60, *range(120, 721, 60), 1440, 10080, 43200)


class ConfigError(Exception):
    """The configuration is invalid; the message names the key."""


class _Base(Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    pass


class WriteBackConfig(_Base):
    """What the consumer writes back to NetBox (DESIGN §10); off by default."""

    journal: bool = False  # a journal entry when a host's outcome changes (created, removed, failing, recovered)
    custom_fields: bool = False  # the Zabbix hostid and the sync state with its time, in custom fields
    hostid_field: str = "nbzx_zabbix_hostid"
    state_field: str = "nbzx_sync_state"
    time_field: str = "nbzx_synced_at"

    def __post_init__(self) -> None:
        for name in (self.hostid_field, self.state_field, self.time_field):
            if not re.fullmatch(r"[a-z0-9_]+", name):
                raise ValueError(f"custom field name {name!r}: lowercase letters, digits and underscores only")

    @property
    def enabled(self) -> bool:
        return self.journal or self.custom_fields

    @property
    def own_fields(self) -> tuple[str, ...]:
        """The custom fields write-back writes (none when it writes none): a NetBox update that changed
        only these is our own, and the receiver drops its webhook."""
        return (self.hostid_field, self.state_field, self.time_field) if self.custom_fields else ()


class NetBoxConfig(_Base):
    url: str = "http://127.0.0.1:8000"
    verify_tls: bool = True
    ca_file: str | None = None  # a private CA (PEM file or bundle) to verify NetBox's certificate with
    timeout_s: PositiveFloat = 15.0
    threads: PositiveInt = 4  # pynetbox is blocking: a bounded pool of threads runs it
    write_back: WriteBackConfig = field(default_factory=WriteBackConfig)


class ZabbixServerConfig(_Base):
    """One Zabbix server: where it is, how hard it may be driven, and which environment variables
    hold its credentials (`token_env`, or `user_env` + `password_env`; by default `ZABBIX_<NAME>_TOKEN`,
    `ZABBIX_<NAME>_USER`, `ZABBIX_<NAME>_PASSWORD`; the one-server `zabbix:` block reads `ZABBIX_TOKEN`...)."""

    url: str = "http://127.0.0.1:8081"
    rate_per_s: PositiveFloat = 50.0
    concurrency: PositiveInt = 8
    timeout_s: PositiveFloat = 30.0
    verify_tls: bool = True
    ca_file: str | None = None  # a private CA (PEM file or bundle) to verify this server's certificate with
    frontend_url: str = ""  # where people open Zabbix, for links (default: url)
    token_env: str = ""
    user_env: str = ""
    password_env: str = ""

    @property
    def ui_url(self) -> str:
        """The Zabbix frontend's base address, for links to hosts."""
        return (self.frontend_url or self.url).removesuffix("/api_jsonrpc.php").rstrip("/")


SERVER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class ZabbixConfig(ZabbixServerConfig):
    """The one Zabbix server (its fields), or several named ones under `servers` (then its own fields,
    other than `settings_import_interval`, are not used)."""

    settings_import_interval: PositiveInt = 60  # minutes between settings_import jobs
    servers: dict[str, ZabbixServerConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.servers:
            if not SERVER_NAME.match(name):
                raise ValueError(f"server name {name!r}: lowercase letters, digits, '-' and '_', at most 32")


DEFAULT_SERVER = "default"


def zabbix_servers(cfg: Config) -> dict[str, ZabbixServerConfig]:
    """The Zabbix servers by name, in config order: the named ones, or the one `zabbix:` block as
    "default"."""
    return dict(cfg.zabbix.servers) or {DEFAULT_SERVER: cfg.zabbix}


class RouteRule(_Base):
    """One routing rule: the objects it matches (the keys of a template rule's `match`, plus `region`
    and `site_group`, which also match their descendants), and the servers they go to. `from_context`
    names a config-context path (`zabbix.server`) whose value names the servers; an object without it
    does not match. `servers: []` means "not monitored"."""

    name: str = ""
    match: dict[str, Any] = field(default_factory=dict)
    servers: list[str] = field(default_factory=list)
    from_context: str = ""

    def __post_init__(self) -> None:
        if self.from_context and self.servers:
            raise ValueError("a route takes servers from the config context (from_context) or names them, not both")


class TopicsConfig(_Base):
    events: str = "netbox.events"
    control: str = "nbzx.control"
    jobs: str = "nbzx.jobs.records"
    dlq: str = "netbox.events.dlq"
    host_status: str = "nbzx.host-status"
    changelog: str = "nbzx.changelog"  # the change-log follower's cursor (compacted, one partition)


class KafkaConfig(_Base):
    bootstrap: str = "127.0.0.1:9092"
    partitions: PositiveInt = 12
    replication: PositiveInt = 1
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    produce_timeout_s: PositiveFloat = 5.0
    client_id: str = "nbzx"
    group: str = "nbzx-consumers"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None


class AccessConfig(_Base):
    """Who may reach a process over the network (DESIGN §7): source networks, the proxies whose
    X-Forwarded-For names the source, and a per-source rate limit. Health and metrics stay open."""

    allow_from: list[str] = field(default_factory=list)  # networks ("10.0.0.0/8"); none: any source
    trusted_proxies: list[str] = field(default_factory=list)  # networks of proxies in front
    rate_limit: str = ""  # per source, in the `limits` notation ("100/second", "10/minute"); "": none

    def __post_init__(self) -> None:
        for name in ("allow_from", "trusted_proxies"):
            for net in getattr(self, name):
                try:
                    ipaddress.ip_network(net, strict=False)
                except ValueError:
                    raise ValueError(f'{name}: {net!r} is not a network ("10.0.0.0/8", "192.0.2.7")') from None
        if self.rate_limit:
            try:
                limits.parse_many(self.rate_limit)
            except ValueError:
                example = '"100/second", "10/minute"'
                raise ValueError(f"rate_limit: {self.rate_limit!r} is not a rate ({example})") from None


class ReceiverAccess(AccessConfig):
    # NetBox does not retry a refused webhook unless RQ_RETRY_MAX is set: the change-log follower
    # (or the next reconcile) catches what a limit refuses, so the default only stops a flood.
    rate_limit: str = "1000/second"


class ConsoleAccess(AccessConfig):
    rate_limit: str = "10/minute"  # sign-in attempts (POST /login) per source, whatever their outcome


class ReceiverConfig(_Base):
    host: str = "127.0.0.1"
    port: Port = 8090
    max_body_bytes: Annotated[int, Meta(gt=0, le=MAX_BODY_BYTES)] = MAX_BODY_BYTES
    # Which object types are turned into events; anything else gets 202 {"ignored": ...}.
    object_types: list[str] = field(default_factory=lambda: [*HOST_OBJECT_TYPES, *DEPENDENCY_OBJECT_TYPES])
    virtual_chassis_as_one_host: bool = False
    scheduler: bool = False  # run the reconcile schedule inside the receiver (one receiver only)
    access: ReceiverAccess = field(default_factory=ReceiverAccess)


class ConsoleConfig(_Base):
    host: str = "127.0.0.1"
    port: Port = 8092
    page_size: PositiveInt = 50
    # The jobs view is bounded: finished jobs beyond the newest `max_jobs`, or older than `max_job_age`,
    # leave memory (the compacted topic keeps them until compaction).
    max_jobs: PositiveInt = 5000
    max_job_age: str = "30d"
    session_ttl: str = "12h"
    history: PositiveInt = 10  # recent syncs kept per host for the host page
    # Where people open Zabbix hosts (links); default: zabbix.url.
    zabbix_frontend_url: str | None = None
    access: ConsoleAccess = field(default_factory=ConsoleAccess)

    def __post_init__(self) -> None:
        parse_duration(self.max_job_age)
        parse_duration(self.session_ttl)


class ConsumerConfig(_Base):
    max_batch: PositiveInt = 500  # records per fetch; one coalesced sync per host key in it
    fetch_max_wait_ms: PositiveInt = 100
    retry_base_s: PositiveFloat = 0.5
    retry_max_s: PositiveFloat = 30.0
    # A key failing transiently (Zabbix or NetBox down) is parked and retried, never dead-lettered
    # while the cause lasts less than this; its partition is committed only up to its records.
    transient_window: str = "24h"

    def __post_init__(self) -> None:
        parse_duration(self.transient_window)

    session_timeout_ms: PositiveInt = 10_000
    heartbeat_interval_ms: PositiveInt = 3_000
    rebalance_timeout_ms: PositiveInt = 30_000
    http_host: str = "0.0.0.0"
    http_port: Port = 8091  # /healthz, /readyz, /metrics


class ChangelogConfig(_Base):
    """The change-log follower (DESIGN §13): every consumer process runs one, one of them leads."""

    enabled: bool = True
    poll_s: PositiveFloat = 1.0  # between reads of NetBox's change log
    page: PositiveInt = 1000  # changes per read
    settle_s: PositiveFloat = 300.0  # how long an id NetBox skipped over is waited for (an open transaction)
    heartbeat_s: PositiveFloat = 30.0  # a cursor record at least this often, even with nothing new


class ScopeRule(_Base):
    filter: dict[str, Any] = field(default_factory=dict)
    require_primary_ip: bool = False
    enabled: bool = True


class ScopeConfig(_Base):
    devices: ScopeRule = field(default_factory=ScopeRule)
    virtual_machines: ScopeRule = field(default_factory=ScopeRule)


class TemplateRule(_Base):
    match: dict[str, Any] = field(default_factory=dict)
    templates: list[str] = field(default_factory=list)


class SnmpConfig(_Base):
    version: Literal[1, 2, 3] = 2
    community: str = "{$SNMP_COMMUNITY}"
    port: Port = 161
    bulk: bool = True
    securityname: str = ""
    securitylevel: Literal["noAuthNoPriv", "authNoPriv", "authPriv"] = "noAuthNoPriv"
    authprotocol: Literal["MD5", "SHA1", "SHA224", "SHA256", "SHA384", "SHA512"] = "SHA1"
    authpassphrase: str = ""  # a Zabbix user macro ("{$SNMPV3_AUTH}"), or from authpassphrase_env
    privprotocol: Literal["DES", "AES128", "AES192", "AES256", "AES192C", "AES256C"] = "AES128"
    privpassphrase: str = ""  # a Zabbix user macro, or from privpassphrase_env
    contextname: str = ""
    authpassphrase_env: str | None = None
    privpassphrase_env: str | None = None


IPMI_AUTHTYPES = {"default": -1, "none": 0, "md2": 1, "md5": 2, "straight": 4, "oem": 5, "rmcp+": 6}
IPMI_PRIVILEGES = {"callback": 1, "user": 2, "operator": 3, "admin": 4, "oem": 5}


class IpmiConfig(_Base):
    """IPMI access for every host (a config context's `zabbix.ipmi` overrides authtype, privilege, username)."""

    authtype: Literal["default", "none", "md2", "md5", "straight", "oem", "rmcp+"] = "default"
    privilege: Literal["callback", "user", "operator", "admin", "oem"] = "user"
    username: str = ""  # a placeholder such as "{custom_fields.bmc_user}" works too
    password: str = ""  # from password_env only
    password_env: str | None = None


TLS_MODES = {"unencrypted": 1, "psk": 2, "cert": 4}  # Zabbix's tls_connect values, bits of tls_accept
TlsMode = Literal["unencrypted", "psk", "cert"]
_PSK = re.compile(r"[0-9a-fA-F]{32,512}")  # what Zabbix takes as a pre-shared key


class TlsConfig(_Base):
    """Encryption between Zabbix and each host's agent (DESIGN §4): how Zabbix connects, what it
    accepts, the PSK identity (a placeholder) and key, the certificate's issuer and subject. A config
    context's `zabbix.tls` overrides any of connect, accept, psk_identity, issuer, subject, and picks
    a key by its name in `psks`; a key itself only ever comes from the environment."""

    connect: TlsMode = "unencrypted"
    accept: list[TlsMode] = field(default_factory=lambda: ["unencrypted"])
    psk_identity: str = ""  # e.g. "nbzx-{site.slug}"
    psk_env: str | None = None  # the environment variable holding the default key (hex)
    # Other keys a config context may pick (`zabbix.tls.psk: dc2`), by name -> environment variable.
    # NetBox data names a key, never a variable: a config context cannot read the service's environment.
    psks: dict[str, str] = field(default_factory=dict)
    issuer: str = ""
    subject: str = ""  # e.g. "CN={name}"
    keys: dict[str, str] = field(default_factory=dict)  # filled from psk_env / psks, never from the file

    def __post_init__(self) -> None:
        if not self.accept:
            raise ValueError("accept: name at least one of unencrypted, psk, cert")


class InterfacesConfig(_Base):
    default: Literal["agent", "snmp", "none"] = "agent"
    snmp_when: dict[str, Any] = field(default_factory=dict)
    agent_port: Port = 10050
    ipmi_port: Port = 623
    jmx_port: Port = 12345
    snmp: SnmpConfig = field(default_factory=SnmpConfig)
    ipmi: IpmiConfig = field(default_factory=IpmiConfig)
    use_dns: bool = False
    ip_family: Literal["ipv4", "ipv6", "any"] = "any"
    # Interfaces every host gets besides the default one, each like a config context's
    # `zabbix.interfaces` entry: {type: agent|snmp|ipmi|jmx, port, address: primary|oob, use_dns, ip, snmp}.
    extra: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for i, spec in enumerate(self.extra):
            if str(spec.get("type", "agent")).lower() not in ("agent", "snmp", "ipmi", "jmx"):
                raise ValueError(f"extra[{i}].type must be agent, snmp, ipmi or jmx")
            if spec.get("address", "primary") not in ("primary", "oob"):
                raise ValueError(f"extra[{i}].address must be primary or oob")


class TagsConfig(_Base):
    from_netbox_tags: bool = True
    fields: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)


class InventoryConfig(_Base):
    mode: Literal["disabled", "manual", "automatic"] = "disabled"
    fields: dict[str, str] = field(default_factory=dict)


class MacroConfig(_Base):
    value: str = ""  # a template ("{site.slug}"); never the value of a secret macro
    secret: bool = False
    description: str = ""
    value_env: str | None = None  # the environment variable that holds the value (secret macros)


HostStatus = Literal["enabled", "disabled", "delete", "maintenance"]


def _default_status_map() -> dict[str, HostStatus]:
    return {
        "active": "enabled",
        "planned": "disabled",
        "staged": "disabled",
        "offline": "disabled",
        "failed": "disabled",
        "decommissioning": "delete",
        "inventory": "delete",
    }


class MaintenanceConfig(_Base):
    # NetBox tags (slug or name) that put a host in maintenance, besides a status mapped to "maintenance".
    tags: list[str] = field(default_factory=list)
    duration: str = "7d"  # length of the window we open; a host still in maintenance gets a new one after
    cleanup_interval: PositiveInt = 60  # minutes between maintenance_cleanup jobs (expired windows we own)

    def __post_init__(self) -> None:
        parse_duration(self.duration)


class HostConfig(_Base):
    name: str = "{name}"
    visible_name: str = "{name}"
    groups: list[str] = field(default_factory=lambda: ["NetBox/{site.name}"])
    # Zabbix refuses a host without a group: used when every template above renders empty.
    fallback_group: str = "NetBox/Unassigned"
    managed_group_prefixes: list[str] = field(default_factory=lambda: ["NetBox/"])
    templates: list[TemplateRule] = field(default_factory=list)
    use_config_context: bool = True
    interfaces: InterfacesConfig = field(default_factory=InterfacesConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    tags: TagsConfig = field(default_factory=TagsConfig)
    inventory: InventoryConfig = field(default_factory=InventoryConfig)
    macros: dict[str, MacroConfig] = field(default_factory=dict)
    description: str = ""
    proxy: str | None = None
    proxy_group: str | None = None
    status: dict[str, HostStatus] = field(default_factory=_default_status_map)
    maintenance: MaintenanceConfig = field(default_factory=MaintenanceConfig)
    adopt: bool = False  # a host we would create whose name is taken by a host we do not own is taken over
    # How `nbzx adopt` matches a Zabbix host to a NetBox object, in this order: technical name, visible name,
    # primary IP.
    adopt_match: list[Literal["host", "name", "ip"]] = field(default_factory=lambda: ["host", "name", "ip"])
    authoritative: list[Literal["groups", "tags", "templates", "macros"]] = field(default_factory=list)


class DeleteConfig(_Base):
    mode: Literal["disable", "soft", "hard"] = "soft"
    graveyard_group: str = "NetBox/Archived"
    grace: str | None = None
    out_of_scope: Literal["delete", "disable", "ignore"] = "delete"

    def __post_init__(self) -> None:
        if self.grace is not None:
            parse_duration(self.grace)


class ReconcileConfig(_Base):
    interval: int = 60
    start_at: str | None = None
    max_delete: str | int = "10%"

    def __post_init__(self) -> None:
        if self.interval not in RECONCILE_INTERVALS:
            raise ValueError(f"interval must be one of {', '.join(map(str, RECONCILE_INTERVALS))} minutes")
        if isinstance(self.max_delete, str) and not re.fullmatch(r"\d+(\.\d+)?%|\d+", self.max_delete):
            raise ValueError("max_delete must be a count (25) or a percentage ('10%')")


class LoggingConfig(_Base):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json: bool = True


class ServerAuth(_Base):
    """One Zabbix server's credentials, from the environment."""

    token: str = ""
    user: str = ""
    password: str = ""

    @property
    def present(self) -> bool:
        return bool(self.token or (self.user and self.password))

    def __repr__(self) -> str:
        return f"ServerAuth({'token' if self.token else 'user' if self.user else 'unset'})"


class Secrets(_Base):
    """Filled from the environment only (see `SECRET_ENV`); never from the YAML file, never logged."""

    netbox_token: str = ""
    zabbix_token: str = ""
    zabbix_user: str = ""
    zabbix_password: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    webhook_secret: str = ""
    api_token: str = ""
    # Console sign-in: comma-separated tokens, each "user:token" (that user) or a bare token (the role's name).
    console_viewer_tokens: str = ""
    console_operator_tokens: str = ""
    # Named server -> its credentials (the one-server config uses the ZABBIX_* ones above).
    zabbix_servers: dict[str, ServerAuth] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            "Secrets("
            + ", ".join(f"{k}={'set' if getattr(self, k) else 'unset'}" for k in self.__struct_fields__)
            + ")"
        )


class Config(_Base):
    netbox: NetBoxConfig = field(default_factory=NetBoxConfig)
    zabbix: ZabbixConfig = field(default_factory=ZabbixConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    receiver: ReceiverConfig = field(default_factory=ReceiverConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    consumer: ConsumerConfig = field(default_factory=ConsumerConfig)
    changelog: ChangelogConfig = field(default_factory=ChangelogConfig)
    scope: ScopeConfig = field(default_factory=ScopeConfig)
    host: HostConfig = field(default_factory=HostConfig)
    delete: DeleteConfig = field(default_factory=DeleteConfig)
    routes: list[RouteRule] = field(default_factory=list)
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    secrets: Secrets = field(default_factory=Secrets)


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """'30d' -> seconds. Accepts s, m, h, d, w."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 12h, 30d or 2w")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


# Which environment variable fills which secret.
SECRET_ENV = {
    "netbox_token": "NETBOX_TOKEN",
    "zabbix_token": "ZABBIX_TOKEN",
    "zabbix_user": "ZABBIX_USER",
    "zabbix_password": "ZABBIX_PASSWORD",
    "kafka_sasl_username": "NBZX_KAFKA_SASL_USERNAME",
    "kafka_sasl_password": "NBZX_KAFKA_SASL_PASSWORD",
    "webhook_secret": "NBZX_WEBHOOK_SECRET",
    "api_token": "NBZX_API_TOKEN",
    "console_viewer_tokens": "NBZX_CONSOLE_VIEWER_TOKENS",
    "console_operator_tokens": "NBZX_CONSOLE_OPERATOR_TOKENS",
}
# Keys whose literal value is a secret wherever they appear in the YAML. A Zabbix user macro
# reference ("{$SNMP_COMMUNITY}") names a secret kept in Zabbix, and is fine.
_SECRETISH = re.compile(r"(token|password|passphrase|secret|community|psk)$", re.IGNORECASE)
_MACRO_REF = re.compile(r"^\{\$[A-Z0-9_.]+(:.*)?\}$")


def _refuse_secrets(node: Any, path: str) -> None:
    """ConfigError for the first literal secret found anywhere in the YAML document."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _refuse_secrets(item, f"{path}[{i}]")
        return
    if not isinstance(node, dict):
        return
    if node.get("secret") is True and node.get("value"):
        raise ConfigError(f"{path}.value: a secret macro's value is not read from the config file; use value_env")
    for key, value in node.items():
        where = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and _SECRETISH.search(key) and isinstance(value, str | dict | list):
            if isinstance(value, str) and (not value or _MACRO_REF.match(value)):
                continue
            hint = f"use a Zabbix user macro or {key}_env" if key.endswith("passphrase") else "use the environment"
            raise ConfigError(f"{where}: secrets are not read from the config file; {hint}")
        _refuse_secrets(value, where)


def _from_env(env: Mapping[str, str], var: str, where: str) -> str:
    if not env.get(var):
        raise ConfigError(f"{where}: environment variable {var} is not set")
    return env[var]


def _fill_env_secrets(cfg: Config, env: Mapping[str, str]) -> None:
    """Secret macro values and SNMPv3 passphrases named by *_env keys, from the environment."""
    for name, macro in cfg.host.macros.items():
        if macro.value_env:
            macro.value = _from_env(env, macro.value_env, f"host.macros.{name}.value_env")
    snmp = cfg.host.interfaces.snmp
    if snmp.authpassphrase_env:
        snmp.authpassphrase = _from_env(env, snmp.authpassphrase_env, "host.interfaces.snmp.authpassphrase_env")
    if snmp.privpassphrase_env:
        snmp.privpassphrase = _from_env(env, snmp.privpassphrase_env, "host.interfaces.snmp.privpassphrase_env")
    ipmi = cfg.host.interfaces.ipmi
    if ipmi.password_env:
        ipmi.password = _from_env(env, ipmi.password_env, "host.interfaces.ipmi.password_env")
    tls = cfg.host.tls
    named = {"": ("host.tls.psk_env", tls.psk_env)} if tls.psk_env else {}
    named |= {name: (f"host.tls.psks.{name}", var) for name, var in tls.psks.items()}
    for name, (where, var) in named.items():
        if not var:
            continue
        key = _from_env(env, var, where)
        if not _PSK.fullmatch(key):  # the message names the variable, never the value
            raise ConfigError(f"{where}: {var} is not a PSK (32 to 512 hexadecimal digits)")
        tls.keys[name] = key


def parse_config(text: str | bytes, env: Mapping[str, str] | None = None) -> Config:
    """Decode and validate YAML text, then fill the secrets from `env`."""
    try:
        raw = msgspec.yaml.decode(text) if text and str(text).strip() else {}
    except msgspec.DecodeError as exc:
        raise ConfigError(f"config is not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("config must be a YAML mapping at the top level")
    if "secrets" in raw:
        raise ConfigError("secrets: secrets are not read from the config file; set " + ", ".join(SECRET_ENV.values()))
    _refuse_secrets(raw, "")
    tls = (raw.get("host") or {}).get("tls") if isinstance(raw.get("host"), dict) else None
    if isinstance(tls, dict) and "keys" in tls:
        raise ConfigError("host.tls.keys: PSKs are not read from the config file; use psk_env or psks")
    try:
        cfg = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(_readable(str(exc))) from exc
    env = os.environ if env is None else env
    cfg.secrets = msgspec.convert({name: env.get(var, "") for name, var in SECRET_ENV.items()}, Secrets)
    cfg.secrets.zabbix_servers = {name: server_auth(name, s, env) for name, s in cfg.zabbix.servers.items()}
    _fill_env_secrets(cfg, env)
    _check_routes(cfg)
    return cfg


def server_auth(name: str, server: ZabbixServerConfig, env: Mapping[str, str]) -> ServerAuth:
    """A named server's credentials, from the variables it names or else `ZABBIX_<NAME>_TOKEN`,
    `ZABBIX_<NAME>_USER` and `ZABBIX_<NAME>_PASSWORD`."""
    token, user, password = _auth_env(name, server)
    return ServerAuth(token=env.get(token, ""), user=env.get(user, ""), password=env.get(password, ""))


def auth_of(cfg: Config, server: str) -> ServerAuth:
    """The credentials of one server (the one-server config's from ZABBIX_TOKEN or ZABBIX_USER and
    ZABBIX_PASSWORD)."""
    if cfg.zabbix.servers:
        return cfg.secrets.zabbix_servers.get(server, ServerAuth())
    sec = cfg.secrets
    return ServerAuth(token=sec.zabbix_token, user=sec.zabbix_user, password=sec.zabbix_password)


def _auth_variables(cfg: Config, server: str) -> str:
    """Where a server's credentials are read from, for an error that names them."""
    if not cfg.zabbix.servers:
        return "ZABBIX_TOKEN or ZABBIX_USER+ZABBIX_PASSWORD"
    token, user, password = _auth_env(server, cfg.zabbix.servers[server])
    return f"{token} or {user}+{password} (server {server})"


def _auth_env(name: str, server: ZabbixServerConfig) -> tuple[str, str, str]:
    """The variables holding a named server's token, user and password: the ones it names, or
    `ZABBIX_<NAME>_TOKEN`, `_USER` and `_PASSWORD`."""
    stem = "ZABBIX_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
    return (
        server.token_env or f"{stem}_TOKEN",
        server.user_env or f"{stem}_USER",
        server.password_env or f"{stem}_PASSWORD",
    )


def _check_routes(cfg: Config) -> None:
    """Routes name servers that exist; several servers need routes."""
    names = set(zabbix_servers(cfg))
    for i, rule in enumerate(cfg.routes):
        unknown = sorted(set(rule.servers) - names)
        if unknown:
            raise ConfigError(
                f"routes[{i}].servers: no server named {', '.join(unknown)}"
                f" (zabbix.servers has {', '.join(sorted(names))})"
            )
    if len(names) > 1 and not cfg.routes:
        raise ConfigError("routes: several Zabbix servers need routes saying which objects go where")


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load the config from `path` (or $NBZX_CONFIG); no path means all defaults."""
    env = os.environ if env is None else env
    path = path or env.get("NBZX_CONFIG")
    if not path:
        return parse_config("", env)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    return parse_config(text, env)


def require(cfg: Config, *needs: str) -> Config:
    """Fail start-up when a secret a command needs is missing, naming its variable; else `cfg`.
    "zabbix_auth" is every configured server's credentials."""
    sec = cfg.secrets
    present = {
        "netbox_token": bool(sec.netbox_token),
        "webhook_secret": bool(sec.webhook_secret),
        "api_token": bool(sec.api_token),
        "console_tokens": bool(sec.console_viewer_tokens or sec.console_operator_tokens),
    }
    names = {**SECRET_ENV, "console_tokens": "NBZX_CONSOLE_VIEWER_TOKENS or NBZX_CONSOLE_OPERATOR_TOKENS"}
    missing = [names[n] for n in needs if n != "zabbix_auth" and not present[n]]
    if "zabbix_auth" in needs:
        missing += [_auth_variables(cfg, s) for s in zabbix_servers(cfg) if not auth_of(cfg, s).present]
    if missing:
        raise ConfigError("missing secret(s) in the environment: " + ", ".join(missing))
    return cfg


def _readable(msg: str) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.zabbix.rate_per_s`": put the key first.
    m = re.match(r"^(.*) - at `\$\.?(.*)`$", msg)
    if not m:
        return msg
    where = re.sub(r"\[(\d+)\]", r"[\1]", m.group(2)) or "(top level)"
    return f"{where}: {m.group(1)}"
