"""Job records and requests are made in one place (nbzx/jobs/records.py); dead-letter retries pick
their keys the same way from the CLI and the console (nbzx/jobs/dead_letters.py)."""

from __future__ import annotations

from typing import get_args

from nbzx.jobs.dead_letters import retry_keys
from nbzx.jobs.records import ENDED, job_params, reconcile_request, record, request_record
from nbzx.schemas.messages import AdoptRequest
from nbzx.schemas.objects import ENDPOINTS, HOST_TYPES, HostType, is_host_key


def test_a_reconcile_request_and_its_waiting_record_agree() -> None:
    req = reconcile_request(
        "console", user="ann", dry_run=True, object_types=["dcim.device"], filter={"site": "lab"}, interval=60
    )
    rec = request_record(req, "scheduled")
    assert (rec.job_id, rec.job_kind, rec.status, rec.trigger, rec.user) == (
        req.job_id,
        "dry_run",
        "scheduled",
        "console",
        "ann",
    )
    assert rec.interval == 60 and rec.completed is None
    assert rec.params == {"dry_run": True, "object_types": ["dcim.device"], "filter": {"site": "lab"}}


def test_a_record_that_ended_is_stamped_completed_and_keeps_what_it_was_given() -> None:
    req = reconcile_request("schedule", retry_of="j-1")
    rec = request_record(req, "skipped", error="reconcile j-0 is running", results={"running_job": "j-0"})
    assert rec.status in ENDED and rec.completed is not None
    assert (rec.error, rec.results, rec.params["retry_of"]) == (
        "reconcile j-0 is running",
        {"running_job": "j-0"},
        "j-1",
    )
    assert record("host_sync", "pending", "console").completed is None


def test_an_adopt_request_is_an_adopt_job_naming_its_hosts() -> None:
    req = AdoptRequest(user="bob", host_keys=[])
    rec = request_record(req, "pending")
    assert (rec.job_kind, rec.job_id, rec.user, rec.params) == ("adopt", req.job_id, "bob", {"host_keys": "all valid"})
    assert job_params(AdoptRequest(host_keys=["dcim.device:1"])) == {"host_keys": ["dcim.device:1"]}


def test_retry_keys_every_lettered_host_key_or_the_named_ones() -> None:
    lettered = ["dcim.device:2", "dcim.device:1", "dcim.device:1", "garbage-key"]
    assert retry_keys(lettered) == (["dcim.device:1", "dcim.device:2"], [])
    assert retry_keys(lettered, ["dcim.device:2"]) == (["dcim.device:2"], [])
    assert retry_keys(lettered, ["dcim.device:2", "dcim.device:9"]) == (["dcim.device:2"], ["dcim.device:9"])


def test_the_host_types_are_one_vocabulary() -> None:
    assert set(HOST_TYPES) == set(ENDPOINTS) == set(get_args(HostType))
    assert is_host_key("dcim.device:12") and not is_host_key("dcim.device") and not is_host_key("x:1:2")
