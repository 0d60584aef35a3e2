"""Export the JSON Schema files of the message types (`python -m nbzx.schemas.export [--check]`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from nbzx.schemas.messages import MESSAGE_TYPES, Message

HERE = Path(__file__).parent


def rendered() -> dict[str, str]:
    """File name -> exact text of every schema file, as the types define them today."""
    files = {"message.schema.json": msgspec.json.schema(Message)}
    for t in MESSAGE_TYPES:
        tag = t.__struct_config__.tag
        files[f"{tag}.schema.json"] = msgspec.json.schema(t)
    return {name: _text(schema) for name, schema in files.items()}


def _text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """Write the files, or with --check report the ones that drifted (exit 1)."""
    files = rendered()
    if "--check" in argv:
        stale = [n for n, text in files.items() if not (HERE / n).exists() or (HERE / n).read_text() != text]
        for n in stale:
            print(f"nbzx/schemas/{n} is out of date: run python -m nbzx.schemas.export", file=sys.stderr)
        return 1 if stale else 0
    for n, text in files.items():
        (HERE / n).write_text(text)
        print(f"wrote nbzx/schemas/{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
