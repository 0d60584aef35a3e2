"""The CLI against the real NetBox of the stack: a refusal is one clear line and exit status 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import NETBOX_URL, ROOT, ensure_stack


def test_a_netbox_refusal_is_a_one_line_error_not_a_traceback(tmp_path: Path) -> None:
    ensure_stack("netbox")
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"netbox": {"url": NETBOX_URL, "write_back": {"custom_fields": True}}}))
    env = {**os.environ, "NETBOX_TOKEN": "0123456789abcdef0123456789abcdef0000dead"}
    out = subprocess.run(
        [sys.executable, "-m", "nbzx.cli", "--config", str(config), "netbox", "setup-fields"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith("nbzx: NetBox answered 403") and "Traceback" not in out.stderr, out.stderr
