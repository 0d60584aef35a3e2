"""TLS to NetBox and Zabbix: certificates verified by default, against the system's CAs or a private
CA (`ca_file`, a PEM file or bundle); unverified only with `verify_tls: false`, which each process
logs when it starts. DESIGN §9."""

from __future__ import annotations

import ssl
from typing import Any

import requests
import urllib3

from nbzx.common.config import ConfigError


def _context(ca_file: str, where: str) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{where}.ca_file: cannot read the CA file {ca_file}: {exc}") from None


def aiohttp_ssl(ca_file: str | None, verify: bool, where: str) -> ssl.SSLContext | bool:
    """What aiohttp takes as `ssl=`: a context trusting `ca_file`, True (the system's CAs) or False."""
    if not verify:
        return False
    return _context(ca_file, where) if ca_file else True


def requests_verify(ca_file: str | None, verify: bool, where: str) -> bool | str:
    """What requests takes as `verify=`: the CA file (checked readable now), True or False."""
    if not verify:
        return False
    if ca_file:
        _context(ca_file, where)
        return ca_file
    return True


class VerifyingAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter that verifies certificates as configured whatever the environment says:
    requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE replace a session's own `verify` (found here,
    where both are set machine-wide: `netbox.ca_file` was ignored)."""

    def __init__(self, verify: bool | str, **kwargs: Any) -> None:
        self._verify = verify
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["verify"] = self._verify
        return super().send(request, *args, **kwargs)


def verify_session(session: requests.Session, ca_file: str | None, verify: bool, where: str, **pool: Any) -> None:
    """Make `session` verify as configured (`pool`: HTTPAdapter's pool sizes)."""
    session.verify = requests_verify(ca_file, verify, where)
    if not verify:  # said once at start (warn_unverified), not on every request
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    adapter = VerifyingAdapter(session.verify, **pool)
    session.mount("http://", adapter)
    session.mount("https://", adapter)


def warn_unverified(log: Any, where: str, url: str, verify: bool) -> None:
    """One warning at start when an HTTPS endpoint's certificate is not checked."""
    if not verify and url.lower().startswith("https:"):
        log.warning(
            "tls_not_verified",
            endpoint=where,
            url=url,
            hint=f"{where}.verify_tls is false: anyone on the path can pose as this server; set {where}.ca_file",
        )
