"""The message contract: exported JSON Schema files match the types; versioned envelope rules."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from nbzx.schemas import ChangeEvent, JobRecord, ReconcileRequest, SyncRequest, UnknownVersion, decode, encode, export
from nbzx.schemas.export import HERE, rendered


def test_exported_schema_files_match_the_types() -> None:
    for name, text in rendered().items():
        path = HERE / name
        assert path.exists(), f"{name} missing: run python -m nbzx.schemas.export"
        assert path.read_text() == text, f"{name} drifted from the types: run python -m nbzx.schemas.export"


def test_schema_check_notices_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "HERE", tmp_path)
    assert export.main([]) == 0
    assert export.main(["--check"]) == 0
    doc = json.loads((tmp_path / "change_event.schema.json").read_text())
    doc["$defs"]["ChangeEvent"]["properties"].pop("host_key")
    (tmp_path / "change_event.schema.json").write_text(json.dumps(doc))
    assert export.main(["--check"]) == 1


@pytest.mark.parametrize(
    "msg",
    [
        ChangeEvent(
            host_key="dcim.device:1",
            event="created",
            object_type="dcim.device",
            object_id=1,
            changed=["name"],
            body=msgspec.Raw(b'{"event": "created"}'),
        ),
        SyncRequest(host_key="virtualization.virtualmachine:3", reason="fanout", cause="dcim.site:2"),
        ReconcileRequest(dry_run=True),
        JobRecord(job_id="j1", job_kind="reconcile", status="running", results={"created": 2}),
    ],
    ids=lambda m: type(m).__name__,
)
def test_round_trip(msg: object) -> None:
    raw = encode(msg)  # type: ignore[arg-type]
    assert json.loads(raw)["v"] == 1
    assert decode(raw) == msg


def test_unknown_fields_are_ignored() -> None:
    doc = json.loads(encode(SyncRequest(host_key="dcim.device:5")))
    doc["added_in_v1_5"] = {"x": 1}
    assert decode(json.dumps(doc).encode()).host_key == "dcim.device:5"  # type: ignore[union-attr]


def test_unknown_version_is_its_own_error() -> None:
    doc = json.loads(encode(SyncRequest(host_key="dcim.device:5")))
    doc["v"] = 2
    with pytest.raises(UnknownVersion):
        decode(json.dumps(doc).encode())


def test_unknown_kind_is_a_validation_error() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"v": 1, "kind": "mystery", "host_key": "x"}')
