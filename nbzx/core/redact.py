"""What may be shown of a plan: secret macro values, SNMP and IPMI secrets and PSKs masked. Pure.

Plans carry the values they write (a secret macro's value, an SNMPv3 passphrase): anything that
prints or serves a plan (`nbzx sync`, job results) shows it through `redacted`.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "********"
_SECRET_DETAILS = frozenset({"authpassphrase", "privpassphrase", "community", "ipmi_password", "tls_psk"})
_MACRO_REF = re.compile(r"^\{\$[A-Z0-9_.]+(:.*)?\}$")


def redacted(value: Any) -> Any:
    """A copy of `value` (plans, changes, JSON-like data) with secrets replaced by a mask."""
    if isinstance(value, list):
        return [redacted(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: redacted(v) for k, v in value.items()}
    if "macro" in out and str(out.get("type", "0")) == "1" and out.get("value"):
        out["value"] = MASK
    for key in _SECRET_DETAILS & out.keys():
        if isinstance(out[key], str) and out[key] and not _MACRO_REF.match(out[key]):
            out[key] = MASK
    return out
