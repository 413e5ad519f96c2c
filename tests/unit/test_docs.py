"""The README and docs stand alone: every link resolves to a file in the repo, and the code map
names every package of the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
PACKAGES = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))


def local_links(doc: Path) -> list[str]:
    return [t for t in LINK.findall(doc.read_text()) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_every_relative_link_of_the_docs_resolves_inside_the_repo():
    broken = []
    for doc in DOCS:
        for target in local_links(doc):
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_no_doc_points_outside_the_repo():
    for doc in DOCS:
        assert "../shared" not in doc.read_text(), doc


def test_the_readme_code_map_names_every_package():
    text = (ROOT / "README.md").read_text()
    code_map = text[text.index("## Code map") :]
    assert PACKAGES, "no packages found"
    missing = [p for p in PACKAGES if f"`{p}/`" not in code_map]
    assert missing == []
