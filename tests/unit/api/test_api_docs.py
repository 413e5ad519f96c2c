"""/docs is Swagger UI served by the API itself: the page names no other host, and every file it
loads is answered here (tests/integration/test_api_docs_browser.py renders it in a browser)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

ATTRS = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""")
URL_LITERAL = re.compile(r"""(?:https?:)?//[^\s"'<>]+""")


async def test_docs_names_no_external_host_and_serves_every_file_it_loads(client):
    r = await client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert URL_LITERAL.findall(page) == []  # no absolute or scheme-relative URL anywhere in the page
    loaded = ATTRS.findall(page)
    assert {urlsplit(u).path.rsplit(".", 1)[-1] for u in loaded} == {"js", "css", "png"}
    for url in loaded:
        assert not urlsplit(url).netloc and url.startswith("/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 500, url
    assert "url: '/openapi.json'" in page
    assert '"validatorUrl": null' in page  # Swagger UI's online validator would fetch a badge from its host


async def test_the_docs_assets_route_serves_only_swagger_uis_files(client):
    r = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in r.content
    for name in ("index.html", "swagger-initializer.js", "..%2F__init__.py", "../__init__.py"):
        refused = await client.get(f"/docs/assets/{name}")
        assert refused.status_code == 404, name
        assert refused.headers["content-type"] == "application/problem+json"


async def test_fastapis_cdn_pages_are_gone(client):
    assert (await client.get("/redoc")).status_code == 404
    doc = (await client.get("/openapi.json")).json()
    assert not any(p.startswith("/docs") for p in doc["paths"])
