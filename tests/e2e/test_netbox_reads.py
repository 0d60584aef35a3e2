"""The NetBox edge against the stack's real NetBox: full listings and batched reads by id."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import nbzx.engine.netbox
from nbzx.core.model import OUT_OF_SCOPE
from nbzx.engine.netbox import NetBox
from tests.conftest import make_config


def _devices(nb: Any, base: dict[str, Any], count: int) -> list[Any]:
    b = base
    return list(
        nb.dcim.devices.create(
            [
                {
                    "name": f"{b['tag']}-{i:02d}",
                    "device_type": b["device_type"].id,
                    "role": b["role"].id,
                    "site": b["site"].id,
                    "status": "active" if i % 2 == 0 else "planned",
                }
                for i in range(count)
            ]
        )
    )


async def test_a_listing_misses_nothing_when_objects_are_deleted_while_it_pages(
    netbox_api: Any, netbox_objects: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = netbox_objects("pages")
    devs = await asyncio.to_thread(_devices, netbox_api, base, 12)
    monkeypatch.setattr(nbzx.engine.netbox, "PAGE", 3)  # four pages and more
    netbox = NetBox(make_config(netbox={"threads": 2}, scope={"devices": {"filter": {"site_id": base["site"].id}}}))
    read_page = netbox._page
    deleted: list[int] = []

    def page_then_delete(object_type: str, params: dict[str, Any]) -> dict[str, Any]:
        page = read_page(object_type, params)
        if not deleted:  # after the first page: offsets of every later page shift by one
            deleted.append(devs[0].id)
            netbox_api.dcim.devices.delete([devs[0].id])
        return page

    monkeypatch.setattr(netbox, "_page", page_then_delete)
    try:
        rows = await netbox.all_objects("dcim.device")
    finally:
        netbox.close()
    ids = [int(r["id"]) for r in rows]
    assert len(ids) == len(set(ids)), "no object twice"
    assert {d.id for d in devs[1:]} <= set(ids), "every object that existed throughout is listed"
    assert rows[0]["site"]["id"] == base["site"].id and "primary_ip4" in rows[0], "full objects, as the API gives"


async def test_reads_by_id_tell_in_scope_out_of_scope_and_gone(netbox_api: Any, netbox_objects: Any) -> None:
    base = netbox_objects("byid")
    devs = await asyncio.to_thread(_devices, netbox_api, base, 4)
    netbox = NetBox(make_config(scope={"devices": {"filter": {"site_id": base["site"].id, "status": "active"}}}))
    try:
        found = await netbox.objects([f"dcim.device:{d.id}" for d in devs] + ["dcim.device:999999999"])
    finally:
        netbox.close()
    assert [found[f"dcim.device:{d.id}"] is OUT_OF_SCOPE for d in devs] == [False, True, False, True]
    assert found[f"dcim.device:{devs[0].id}"]["name"] == devs[0].name  # type: ignore[index]
    assert found["dcim.device:999999999"] is None


async def test_selection_custom_fields_of_the_real_netbox_feed_rules_and_placeholders(
    netbox_api: Any, netbox_objects: Any
) -> None:
    from nbzx.core.mapping import map_host

    nb = netbox_api
    base = netbox_objects("cf")
    tag = base["tag"].replace("-", "_")
    choices = nb.extras.custom_field_choice_sets.create(
        name=f"{tag}-env", extra_choices=[["prod", "Production"], ["dev", "Development"]]
    )
    fields = [
        nb.extras.custom_fields.create(
            name=f"{tag}_env", type="select", choice_set=choices.id, object_types=["dcim.device"]
        ),
        nb.extras.custom_fields.create(
            name=f"{tag}_tiers", type="multiselect", choice_set=choices.id, object_types=["dcim.device"]
        ),
    ]
    try:
        [dev] = await asyncio.to_thread(_devices, nb, base, 1)
        await asyncio.to_thread(dev.update, {"custom_fields": {f"{tag}_env": "prod", f"{tag}_tiers": ["prod", "dev"]}})
        cfg = make_config(
            host={
                "groups": [f"NetBox/{{custom_fields.{tag}_env}}", f"Env/{{custom_fields.{tag}_env.label}}"],
                "templates": [{"match": {f"custom_fields.{tag}_env": "Production"}, "templates": ["ICMP Ping"]}],
                "description": f"tiers {{custom_fields.{tag}_tiers}}",
            }
        )
        netbox = NetBox(cfg)
        try:
            key = f"dcim.device:{dev.id}"
            obj = (await netbox.objects([key]))[key]
        finally:
            netbox.close()
        assert isinstance(obj, dict)
        desired = map_host(obj, key, cfg)
        assert desired.groups == ("Env/Production", "NetBox/prod")
        assert desired.templates == ("ICMP Ping",)
        assert desired.description == "tiers dev,prod" or desired.description == "tiers prod,dev"
    finally:
        for f in fields:
            await asyncio.to_thread(f.delete)
        await asyncio.to_thread(choices.delete)


async def test_change_log_reads_after_a_cursor_and_asks_for_holes_by_range(
    netbox_api: Any, netbox_objects: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = netbox_objects("chg")
    netbox = NetBox(make_config())
    try:
        top = await netbox.newest_change_id()
        devs = await asyncio.to_thread(_devices, netbox_api, base, 5)
        after = await netbox.changes_after(top, 1000)
        ours = [
            r
            for r in after
            if r["changed_object_type"] == "dcim.device" and r["changed_object_id"] in {d.id for d in devs}
        ]
        assert [r["action"]["value"] for r in ours] == ["create"] * 5
        assert [int(r["id"]) for r in after] == sorted(int(r["id"]) for r in after)
        assert set(ours[0]) == {*nbzx.engine.netbox.CHANGE_FIELDS.split(",")}
        ids = [int(r["id"]) for r in ours]
        monkeypatch.setattr(nbzx.engine.netbox, "PAGE", 2)  # a run read in pages
        gone = max(ids) + 10_000_000  # never handed out: stays a hole
        found = await netbox.changes([*ids, gone, gone + 1])
        assert sorted(int(r["id"]) for r in found) == sorted(ids)
        assert await netbox.newest_change_id() >= max(ids)
    finally:
        netbox.close()
