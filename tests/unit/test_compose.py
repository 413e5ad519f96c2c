"""docker-compose.yml and docs/running.md describe the same services; the docs list every setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- compose-services:begin", "<!-- compose-services:end -->"


def documented_services() -> dict[str, dict]:
    """The rows of the delimited table in docs/running.md: service -> image, ports, command."""
    text = (ROOT / "docs" / "running.md").read_text()
    block = text[text.index(BEGIN) : text.index(END)]
    rows = [line for line in block.splitlines() if line.startswith("|")][2:]  # skip header and rule
    out = {}
    for row in rows:
        cells = [c.strip().strip("`") for c in row.strip("|").split("|")]
        service, image, ports, command = cells
        out[service] = {
            "image": image,
            "ports": [] if ports == "-" else [p.strip().strip("`") for p in ports.split(",")],
            "command": None if command == "-" else command,
        }
    return out


def compose_services() -> dict[str, dict]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    out = {}
    for name, svc in services.items():
        command = svc.get("command")
        out[name] = {
            "image": svc.get("image"),
            "ports": [str(p) for p in svc.get("ports", [])],
            "command": " ".join(command) if isinstance(command, list) else command,
        }
    return out


def test_docs_table_names_exactly_the_compose_services():
    assert set(documented_services()) == set(compose_services())


@pytest.mark.parametrize("field", ["image", "ports", "command"])
def test_each_service_has_the_documented_image_ports_and_command(field):
    docs, compose = documented_services(), compose_services()
    assert {s: docs[s][field] for s in compose} == {s: compose[s][field] for s in compose}


def test_kafka_image_is_pinned_to_a_4_1_release():
    assert re.fullmatch(r"apache/kafka:4\.1\.\d+", compose_services()["kafka"]["image"])


def test_the_seatledger_services_use_the_image_built_from_the_dockerfile():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("topics", "worker", "worker-2", "sink", "archive"):
        assert services[name]["build"] == "." and services[name]["image"] == "seatledger:local"
    assert (ROOT / "Dockerfile").read_text().startswith("# ") and "FROM python:3.11-slim" in (
        ROOT / "Dockerfile"
    ).read_text()


def test_running_docs_list_every_setting():
    text = (ROOT / "docs" / "running.md").read_text()
    missing = [
        f"SEATLEDGER_{name.upper()}" for name in Settings.model_fields if f"`SEATLEDGER_{name.upper()}`" not in text
    ]
    assert not missing, f"document these settings in docs/running.md (Settings table): {missing}"
