"""Secrets never shown: secret macro values and SNMP secrets in a plan are masked."""

from __future__ import annotations

from nbzx.core.diff import create_changes
from nbzx.core.model import SNMP, DesiredHost, Interface, Macro
from nbzx.core.redact import MASK, redacted


def test_a_plans_secrets_are_masked_and_the_rest_kept() -> None:
    d = DesiredHost(
        host_key="dcim.device:1",
        host="h",
        name="h",
        status=0,
        groups=("NetBox/A",),
        templates=(),
        interfaces=(
            Interface(
                type=SNMP,
                ip="192.0.2.1",
                port="161",
                details=(("authpassphrase", "a-secret"), ("privpassphrase", "{$PRIV}"), ("securityname", "mon")),
            ),
        ),
        tags=(),
        macros=(Macro(macro="{$PW}", value="hunter2", secret=True), Macro(macro="{$SITE}", value="lab")),
    )
    changes = create_changes(d)
    shown = redacted({"plan": {"changes": changes}})
    text = repr(shown)
    assert "hunter2" not in text and "a-secret" not in text
    [iface] = shown["plan"]["changes"]["interfaces"]
    assert iface["details"] == {"authpassphrase": MASK, "privpassphrase": "{$PRIV}", "securityname": "mon"}
    assert {m["macro"]: m["value"] for m in shown["plan"]["changes"]["macros"]} == {"{$PW}": MASK, "{$SITE}": "lab"}
    assert changes["macros"][0]["value"] == "hunter2", "the plan itself is untouched"
