"""Plain typed data of the sync engine: what NetBox wants (`DesiredHost`), what Zabbix has
(`ActualHost`), and what to do about it (`Plan`). No I/O here.

Both sides are normalised to the same shapes (names, sorted tuples, strings as Zabbix stores
them), so an unchanged host compares equal field by field and yields an empty plan.
"""

from __future__ import annotations

from typing import Any, Literal

from msgspec import Struct, field

AGENT, SNMP, IPMI, JMX = 1, 2, 3, 4  # Zabbix's interface types
INTERFACE_NAMES = {AGENT: "agent", SNMP: "SNMP", IPMI: "IPMI", JMX: "JMX"}  # as people read them
IPMI_DEFAULTS: dict[str, int | str] = {
    "ipmi_authtype": -1,
    "ipmi_privilege": 2,
    "ipmi_username": "",
    "ipmi_password": "",
}
IPMI_FIELDS = tuple(IPMI_DEFAULTS)
# Agent encryption, as host.get returns it (1 = unencrypted); the PSK identity and key are write-only.
TLS_DEFAULTS: dict[str, int | str] = {"tls_connect": 1, "tls_accept": 1, "tls_issuer": "", "tls_subject": ""}
TLS_FIELDS = tuple(TLS_DEFAULTS)
TLS_PSK = 2
# Zabbix never returns a host's PSK: this macro holds the digest of the identity and key we wrote.
PSK_MACRO = "{$NBZX.TLS.PSK}"
OWNER_TAG = "netbox:key"
MAINTENANCE_PREFIX = "nbzx:"  # our maintenance windows are named "nbzx:<host key>"
URL_TAG = "netbox:url"
DELETED_TAG = "netbox:deleted"
SECRET_HASH_PREFIX = "nbzx:sha256:"

# "error": the key could not be planned (its data broke mapping); the reason says why.
Action = Literal["noop", "create", "update", "delete", "conflict", "skip", "error"]


class Interface(Struct, frozen=True, kw_only=True, order=True):
    """One Zabbix host interface, normalised (strings as Zabbix returns them)."""

    type: int  # 1 agent, 2 SNMP, 3 IPMI, 4 JMX
    ip: str = ""
    dns: str = ""
    useip: int = 1
    port: str = "10050"
    main: int = 1
    details: tuple[tuple[str, str], ...] = ()  # SNMP details, sorted (key, value) pairs


class Macro(Struct, frozen=True, kw_only=True, order=True):
    """A user macro. For a secret macro `value` is the plain value on the desired side only."""

    macro: str
    value: str = ""
    secret: bool = False
    description: str = ""


class DesiredHost(Struct, frozen=True, kw_only=True):
    """The Zabbix host a NetBox object should be, computed by `nbzx.core.mapping.map_host`."""

    host_key: str
    host: str  # technical name, already made safe
    name: str  # visible name
    status: int  # 0 enabled, 1 disabled
    groups: tuple[str, ...]
    templates: tuple[str, ...]
    interfaces: tuple[Interface, ...]
    tags: tuple[tuple[str, str], ...]
    macros: tuple[Macro, ...] = ()
    inventory_mode: int = -1  # -1 disabled, 0 manual, 1 automatic
    inventory: tuple[tuple[str, str], ...] = ()
    description: str = ""
    proxy: str | None = None
    proxy_group: str | None = None
    # IPMI access (host-level in Zabbix): -1 default auth, privilege 2 user; the password is as written.
    ipmi_authtype: int = -1
    ipmi_privilege: int = 2
    ipmi_username: str = ""
    ipmi_password: str = ""
    # Agent encryption (bits of tls_accept: 1 unencrypted, 2 PSK, 4 certificate).
    tls_connect: int = 1
    tls_accept: int = 1
    tls_issuer: str = ""
    tls_subject: str = ""
    tls_psk_identity: str = ""
    tls_psk: str = ""  # the key itself, from the environment; never shown (nbzx.core.redact)
    maintenance: bool = False
    # Names of the tags, templates and macros our config can produce on any host: only these are
    # made to match; what people add by hand in Zabbix outside them stays.
    managed_tag_names: frozenset[str] = frozenset()
    managed_templates: frozenset[str] = frozenset()
    managed_macros: frozenset[str] = frozenset()
    managed_group_prefixes: tuple[str, ...] = ("NetBox/",)
    authoritative: frozenset[str] = frozenset()


class ActualInterface(Struct, frozen=True, kw_only=True):
    """A Zabbix interface with its id."""

    interfaceid: str
    iface: Interface


class ActualMacro(Struct, frozen=True, kw_only=True):
    """A Zabbix host macro with its id (secret values are never returned by Zabbix)."""

    hostmacroid: str
    macro: str
    value: str | None
    secret: bool
    description: str = ""


class ActualHost(Struct, frozen=True, kw_only=True):
    """A Zabbix host as read back, normalised."""

    hostid: str
    host: str
    name: str
    status: int
    groups: tuple[str, ...]
    templates: tuple[str, ...]
    interfaces: tuple[ActualInterface, ...]
    tags: tuple[tuple[str, str], ...]
    macros: tuple[ActualMacro, ...] = ()
    inventory_mode: int = -1
    inventory: dict[str, str] = field(default_factory=dict)
    description: str = ""
    proxy: str | None = None
    proxy_group: str | None = None
    ipmi_authtype: int = -1
    ipmi_privilege: int = 2
    ipmi_username: str = ""
    ipmi_password: str = ""
    tls_connect: int = 1
    tls_accept: int = 1
    tls_issuer: str = ""
    tls_subject: str = ""

    @property
    def host_key(self) -> str | None:
        """The owner tag's value: set only on hosts this service manages."""
        return next((v for t, v in self.tags if t == OWNER_TAG), None)

    @property
    def deleted_on(self) -> str | None:
        """The date the host was archived or disabled because its NetBox object went away."""
        return next((v for t, v in self.tags if t == DELETED_TAG), None)


class Plan(Struct, kw_only=True):
    """What `apply` must do for one host key; `changes` holds only what differs (by name, not id)."""

    host_key: str
    action: Action
    hostid: str | None = None
    host: str = ""  # the Zabbix technical name NetBox wants (or the host's, when NetBox wants none)
    changes: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    removes: bool = False  # the delete policy (archive, disable or delete) takes this host away
    # Our maintenance window for this host: "start" opens one, "end" removes it (see `maintenance_op`).
    maintenance: Literal["start", "end"] | None = None
    maintenance_id: str | None = None  # the window to remove (or the expired one to replace)
    server: str = ""  # the Zabbix server the plan is for

    @property
    def empty(self) -> bool:
        """True when nothing needs writing to Zabbix."""
        return self.action in ("noop", "skip", "conflict", "error") and self.maintenance is None


class Window(Struct, frozen=True, kw_only=True):
    """One of our maintenance windows in Zabbix."""

    maintenanceid: str
    active_till: int


def maintenance_op(wanted: bool, window: Window | None, now: int) -> tuple[Literal["start", "end"] | None, str | None]:
    """What to do with a host's maintenance window: open one when wanted and none is active, remove
    ours when no longer wanted. Pure."""
    active = window is not None and window.active_till > now
    if wanted and not active:
        return "start", window.maintenanceid if window else None
    if not wanted and window is not None:
        return "end", window.maintenanceid
    return None, None


class OutOfScope:
    """The object exists in NetBox but the scope filter excludes it."""

    def __repr__(self) -> str:
        return "OutOfScope"


OUT_OF_SCOPE = OutOfScope()


class NotRouted(Struct, frozen=True):
    """The object is in scope, but its route does not include this Zabbix server: why, in words.
    `broken`: the route itself cannot be followed (a config context naming an unknown server), so the
    key is an error and nothing is taken away anywhere."""

    reason: str
    broken: bool = False


Found = dict[str, Any] | OutOfScope | NotRouted | None  # None: gone from NetBox
