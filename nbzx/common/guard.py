"""Who may reach a process over the network: the allow-list of source networks and the per-source
rate limit (429 with Retry-After), both before any handler runs. DESIGN §7.

A request's source is its peer address, or, when the peer is one of `trusted_proxies`, the last
address in X-Forwarded-For that is not a trusted proxy: each proxy appends the address it saw, so
only the entries our own proxies added can be believed. Health and metrics routes stay open (the
kubelet and Prometheus come from addresses an allow-list for NetBox would not name).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import limits
import msgspec
from aiohttp import web
from aiohttp.typedefs import Middleware
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from prometheus_client import Counter

from nbzx.common.config import AccessConfig
from nbzx.common.logging import get_logger

OPEN_PATHS = ("/healthz", "/readyz", "/metrics")

REFUSED = Counter(
    "nbzx_http_refused_total",
    "Requests refused before their handler: source not allowed (forbidden) or over its rate (rate_limited)",
    ["component", "reason"],
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_LOG_EVERY = limits.parse("1/minute")  # one refusal line per source and reason a minute, not one per request


def networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """The networks of `specs` ("10.0.0.0/8", "192.0.2.7"); config validation already refused bad ones."""
    return tuple(ipaddress.ip_network(s, strict=False) for s in specs)


def in_any(address: str | None, nets: tuple[Network, ...]) -> bool:
    """True when `address` parses and lies in one of `nets`."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in nets)


def source(peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str | None:
    """The address a request came from (see the module's docstring); None when unknown."""
    if peer is None or not forwarded_for or not in_any(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not in_any(hop, trusted):
            return hop
    return hops[0] if hops else peer


def over_https(request: web.Request, trusted: tuple[Network, ...]) -> bool:
    """Served over HTTPS: by us, or by a trusted proxy that says so in X-Forwarded-Proto."""
    if request.secure:
        return True
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https" and in_any(request.remote, trusted)


def _refusal(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = msgspec.json.encode({"error": message})
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


class Guard:
    """The allow-list and rate limit of one process, as an aiohttp middleware (`.middleware`).

    `limited(request)` says which requests count against the rate (every guarded one for the
    receiver, sign-in attempts for the console).
    """

    def __init__(self, access: AccessConfig, component: str, limited: Callable[[web.Request], bool]) -> None:
        self.component = component
        self.allow = networks(access.allow_from)
        self.trusted = networks(access.trusted_proxies)
        self.rates = limits.parse_many(access.rate_limit) if access.rate_limit else []
        self._rate_text = access.rate_limit
        self._limited = limited
        # Made in the running loop, on first use; then the same two limiters for every request.
        self._made: tuple[MovingWindowRateLimiter, FixedWindowRateLimiter] | None = None
        self._log = get_logger(component=component)

    def _limiters(self) -> tuple[MovingWindowRateLimiter, FixedWindowRateLimiter]:
        if self._made is None:
            storage = MemoryStorage()
            self._made = MovingWindowRateLimiter(storage), FixedWindowRateLimiter(storage)
        return self._made

    async def _refused(self, reason: str, src: str | None, **fields: Any) -> None:
        REFUSED.labels(self.component, reason).inc()
        if await self._limiters()[1].hit(_LOG_EVERY, "log", reason, src or "?"):
            self._log.warning("request_refused", reason=reason, source=src, **fields)

    async def check(self, request: web.Request) -> web.Response | None:
        """The refusal for `request` (403 or 429), or None when it may go on."""
        if request.path.startswith(OPEN_PATHS):
            return None
        src = source(request.remote, request.headers.get("X-Forwarded-For"), self.trusted)
        if self.allow and not in_any(src, self.allow):
            await self._refused("forbidden", src, path=request.path)
            return _refusal(403, f"source {src or 'unknown'} is not in {self.component}.access.allow_from")
        if not self.rates or not self._limited(request):
            return None
        moving, _ = self._limiters()
        key = src or "unknown"
        for rate in self.rates:
            if not await moving.hit(rate, self.component, key):
                stats = await moving.get_window_stats(rate, self.component, key)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                await self._refused("rate_limited", src, path=request.path, rate=str(rate))
                message = (
                    f"too many requests from {key}: {self.component}.access.rate_limit is {self._rate_text}; "
                    f"retry in {wait} s"
                )
                return _refusal(429, message, {"Retry-After": str(wait)})
        return None

    @property
    def middleware(self) -> Middleware:
        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            refusal = await self.check(request)
            return refusal if refusal is not None else await handler(request)

        return guard
