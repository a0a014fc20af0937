"""GET /api/docs: interactive documentation (Swagger UI) of /api/openapi.json, working offline.

Swagger UI's files come from a Python package (`fastapi-offline` ships swagger-ui 5, which
renders OpenAPI 3.1) and are served by the gateway under /api/docs/; the page loads nothing
from elsewhere (its Content-Security-Policy says so too). Calls tried from the page are
same-origin fetches: after `POST /api/login` from the page the browser keeps the session cookie
and sends it with every following call, and the CSRF origin check accepts the page's origin.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from starlette.responses import Response

from gateway.runtime import RequestContext
from stockmanager.errors import NotFound

ASSET_PACKAGE = "fastapi_offline"
DOCS_PATH = "/api/docs"
OPENAPI_URL = "/api/openapi.json"

# name under /api/docs/ -> (file in the package's static/ folder, media type)
PACKAGED_ASSETS: dict[str, tuple[str, str]] = {
    "swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": ("swagger-ui.css", "text/css; charset=utf-8"),
    "favicon.png": ("favicon.png", "image/png"),
}

INIT_SCRIPT = f"""\
window.ui = SwaggerUIBundle({{
  url: "{OPENAPI_URL}",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: true,
  docExpansion: "list",
  displayRequestDuration: true,
  filter: true,
  validatorUrl: null,
  requestInterceptor: function (request) {{
    request.credentials = "same-origin";
    return request;
  }},
}});
"""

PAGE = f"""\
<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>StockManager API</title>
  <link rel="icon" type="image/png" href="{DOCS_PATH}/favicon.png">
  <link rel="stylesheet" href="{DOCS_PATH}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{DOCS_PATH}/swagger-ui-bundle.js"></script>
  <script src="{DOCS_PATH}/init.js"></script>
</body>
</html>
"""

# Everything from this origin; Swagger UI sets inline styles and uses data: images.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'self'"
)


def asset_directory() -> Path | None:
    """The package's static folder, found without importing the package."""
    spec = importlib.util.find_spec(ASSET_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@lru_cache(maxsize=len(PACKAGED_ASSETS))
def _packaged(name: str) -> bytes | None:
    directory = asset_directory()
    if directory is None:
        return None
    try:
        return (directory / PACKAGED_ASSETS[name][0]).read_bytes()
    except OSError:
        return None


async def docs_page(ctx: RequestContext) -> Response:
    return Response(
        PAGE,
        media_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


async def docs_asset(ctx: RequestContext) -> Response:
    name = ctx.match.params.get("asset", "")
    if name == "init.js":
        return Response(
            INIT_SCRIPT,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "no-cache"},
        )
    if name not in PACKAGED_ASSETS:
        raise NotFound()
    content = _packaged(name)
    if content is None:
        raise NotFound()
    return Response(
        content,
        media_type=PACKAGED_ASSETS[name][1],
        headers={"Cache-Control": "public, max-age=86400"},
    )
