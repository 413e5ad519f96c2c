"""JSON Schema files generated from the models, checked in under schemas/json/."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import TypeAdapter

from schemas.events import EVENT_MODELS, Event

SCHEMA_DIR = Path(__file__).parent / "json"


def render_schemas() -> dict[str, str]:
    """File name -> file text, deterministic so a test can compare them byte for byte."""
    out: dict[str, str] = {}
    union = TypeAdapter(Event).json_schema()
    union["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    union["title"] = "seatledger event"
    out["event.schema.json"] = json.dumps(union, indent=2, sort_keys=True) + "\n"
    for kind, model in sorted(EVENT_MODELS.items()):
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[f"{kind}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def write_schemas(folder: Path = SCHEMA_DIR, *, check: bool = False) -> list[str]:
    """Write (or with `check`, only compare) the files; returns the names that were stale."""
    folder.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, text in render_schemas().items():
        path = folder / name
        if not path.exists() or path.read_text() != text:
            stale.append(name)
            if not check:
                path.write_text(text)
    return stale
