"""GET /docs: an interactive reference of the API (Swagger UI) rendered from
openapi.yaml, with "Try it out" against this same server.

Every file the page loads is served by the app from docs_assets/ (no CDN), so it
works offline and under a strict Content-Security-Policy: scripts, styles and
requests from this origin only, no inline script or style (docs/docs-page.md).

    GET /docs                  the page; cached 5 minutes, then revalidated (ETag)
    GET /docs/{build}/{name}   its scripts, styles and license texts; {build} is a
                               hash of them all, so a URL never changes content:
                               cached for a year
    GET /openapi.json          the document; cached 5 minutes (ETag)

openapi.yaml lies outside the Lambda zip and PyYAML is no runtime dependency:
docs_assets/openapi.json is its conversion, written by
`.venv/bin/python -m chalicelib.docs_page` and checked against it by
tests/test_docs_page.py. app.py imports this module at the first request for
the page, and the files are read then.
"""

import hashlib
import html
import json
import re
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from chalice import NotFoundError, Response

from chalicelib import web

ASSETS = Path(__file__).with_name("docs_assets")
SPEC_FILE = ASSETS / "openapi.json"

# Its routes in app.py (path, method): not API operations, so not in openapi.yaml.
ROUTES = {("/docs", "GET"), ("/docs/{build}/{name}", "GET"), ("/openapi.json", "GET")}

_TEXT = "text/plain; charset=utf-8"
# What /docs/{build}/ serves: file name -> Content-Type. Text only: the app
# declares no binary media type, so API Gateway passes every body through as is.
SERVED = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "docs.js": "text/javascript; charset=utf-8",
    "docs.css": "text/css; charset=utf-8",
    # swagger-ui-dist's license, notice and its bundle's third-party licenses
    # (the first line of swagger-ui-bundle.js points to the last one).
    "LICENSE": _TEXT,
    "NOTICE": _TEXT,
    "swagger-ui-bundle.js.LICENSE.txt": _TEXT,
}

CSP = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",  # swagger-ui.css draws its icons as data: URIs
    "connect-src 'self'",  # the document and "Try it out"
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATED = "public, max-age=300"

# The document's servers name hosts (127.0.0.1:8000, the AWS stage); the page
# tries requests where it was served instead. A relative URL is resolved against
# the document's own URL: /openapi.json -> /, /api/openapi.json -> /api.
SAME_ORIGIN_SERVERS = [{"url": ".", "description": "this server (where this page is served)"}]

_SOURCE_MAP = re.compile(r"\n?/\*# sourceMappingURL=[^*]*\*/\s*$")


class Served(NamedTuple):
    body: str
    content_type: str
    etag: str


class Site(NamedTuple):
    build: str
    assets: dict[str, Served]
    page: Served
    spec: Served


def _served(body: str, content_type: str) -> Served:
    return Served(body, content_type, '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"')


def _asset_text(name: str) -> str:
    text = (ASSETS / name).read_text(encoding="utf-8")
    # The map is not bundled: a reference to it is a 404 in every devtools.
    return _SOURCE_MAP.sub("\n", text) if name.endswith(".css") else text


def served_spec() -> dict[str, Any]:
    """The document as /openapi.json serves it: openapi.yaml with this server."""
    spec = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    spec["servers"] = SAME_ORIGIN_SERVERS
    return spec


def _page(build: str, title: str) -> str:
    asset = f"docs/{build}/"  # relative to /docs (or /<stage>/docs)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{asset}swagger-ui.css">
<link rel="stylesheet" href="{asset}docs.css">
</head>
<body>
<noscript>This reference needs JavaScript. The OpenAPI document itself is
<a href="openapi.json">openapi.json</a>.</noscript>
<div id="swagger-ui"></div>
<script src="{asset}swagger-ui-bundle.js"></script>
<script src="{asset}docs.js"></script>
</body>
</html>
"""


@cache
def site() -> Site:
    """Everything the routes serve, built once per process (at the first request)."""
    assets = {name: _served(_asset_text(name), kind) for name, kind in SERVED.items()}
    digest = hashlib.sha256()
    for name, served in sorted(assets.items()):
        digest.update(f"{name}\0{served.etag}\0".encode())
    build = digest.hexdigest()[:16]
    spec = served_spec()
    page = _served(_page(build, f"{spec['info']['title']} reference"), "text/html; charset=utf-8")
    spec_json = _served(json.dumps(spec, ensure_ascii=False, separators=(",", ":")),
                        "application/json")
    return Site(build, assets, page, spec_json)


def _fresh(if_none_match: str | None, etag: str) -> bool:
    """True if the client's copy (If-None-Match, weak comparison) is this one."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags or "*" in tags


def _reply(served: Served, cache_control: str, **headers: str) -> Response:
    # An explicit Cache-Control: the middleware's no-store is only a default.
    common = {"Cache-Control": cache_control, "ETag": served.etag, **headers}
    if _fresh(web.request().headers.get("if-none-match"), served.etag):
        return Response(body="", status_code=304, headers=common)
    return Response(body=served.body, headers={"Content-Type": served.content_type, **common})


def page_response() -> Response:
    """GET /docs: the page (a redirect to /docs for /docs/)."""
    # API Gateway (and chalice local) route /docs/ here too, where the page's
    # relative URLs would miss: send the browser to /docs.
    if web.request().context.get("path", "").endswith("/"):
        return Response(body="", status_code=301, headers={"Location": "../docs"})
    return _reply(site().page, REVALIDATED, **{
        "Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer"})


def asset_response(build: str, name: str) -> Response:
    """GET /docs/{build}/{name}: a file of the page, cached for good."""
    current = site()
    served = current.assets.get(name) if build == current.build else None
    if served is None:  # an unknown file, or one of an earlier build
        raise NotFoundError("path: no such file of the docs page")
    return _reply(served, IMMUTABLE)


def spec_response() -> Response:
    """GET /openapi.json."""
    return _reply(site().spec, REVALIDATED)


# -- the conversion (development only: PyYAML is a dev requirement)

def yaml_as_json(text: str) -> Any:
    """openapi.yaml's content as JSON values. Timestamps stay text: YAML would
    read an unquoted 2024-05-01 as a date, which JSON has no type for."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers
                if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    return yaml.load(text, Loader=Loader)


def spec_file_text(yaml_text: str) -> str:
    """The content docs_assets/openapi.json should have for this openapi.yaml."""
    return json.dumps(yaml_as_json(yaml_text), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    source = Path(__file__).resolve().parent.parent / "openapi.yaml"
    SPEC_FILE.write_text(spec_file_text(source.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"{SPEC_FILE}: {SPEC_FILE.stat().st_size} bytes from {source}")


if __name__ == "__main__":
    main()
