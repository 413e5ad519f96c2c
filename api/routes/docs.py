"""/docs: Swagger UI over /openapi.json, served from this package, never from a CDN.

FastAPI's own /docs page loads Swagger UI's script, style and favicon from public hosts, which
fails on a machine without internet access and leaks every visit to them. The assets come from the
`swagger-ui-bundle-v2` package (Swagger UI 5, which reads OpenAPI 3.1; Apache-2.0, its licence
ships in the package's metadata) and are served under /docs/assets/. Swagger UI's online validator
(a badge fetched from a public host) is switched off.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

from api.problems import ApiProblem

router = APIRouter(include_in_schema=False)

DOCS_URL = "/docs"
ASSETS_URL = f"{DOCS_URL}/assets"
# The only files served, with their media types: the page needs these three.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


@router.get(DOCS_URL)
def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} - docs",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get(ASSETS_URL + "/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise ApiProblem("not-found", f"no asset {name!r} under {ASSETS_URL}")
    return FileResponse(
        Path(str(swagger_ui_path)) / name, media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=86400"}
    )
