"""GET /docs: the API reference (Swagger UI) served whole by the app.

The fast tests call the Lambda entry point: the page sets a strict
Content-Security-Policy and loads only its own files, which answer 200 with
long cache headers and fit a Lambda response; docs_assets/openapi.json is
openapi.yaml. The slow ones drive headless Chromium (/usr/bin/chromium; skipped
without it) over the DevTools protocol against a real local server, with every
host but 127.0.0.1 unresolvable: the page lists every operation of openapi.yaml,
"Try it out" on GET /health shows its answer, no request leaves the origin and
the CSP reports no violation.
"""

import hashlib
import http.server
import json
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

import app as app_module
from chalicelib import docs_page
from tests.browser import Page, started_chromium
from tools.lambda_events import event

ROOT = Path(__file__).resolve().parent.parent
SPEC_YAML = ROOT / "openapi.yaml"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# A synchronous Lambda invocation's response, as JSON, is at most 6 MB
# (API Gateway's own limit, 10 MB, is larger).
LAMBDA_RESPONSE_LIMIT = 6 * 2**20
YEAR = 365 * 24 * 3600

# swagger-ui-dist 5.35.0 from npm (`npm pack swagger-ui-dist`), files unchanged.
SWAGGER_UI_DIST = {
    "swagger-ui-bundle.js": "e6a898692f2d768e807c3ba4626068a69a2c5dd960dd6c76f3e4d3a3de180af2",
    "swagger-ui.css": "5ed08757e53da3e026d6cbecc61fe5d43585c9560b302d534ad56692519a273d",
    "LICENSE": "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30",
    "NOTICE": "0d20d1adef18aee3f40dd258172155521ce702ac445cb5f7b7d60ed32dad2fb2",
    "swagger-ui-bundle.js.LICENSE.txt":
        "37eb6e7e59aed57b2c1acf076574b818ea07b74265717e0bd67b59e0baf9abbb",
}


@pytest.fixture(scope="module")
def routes() -> Any:
    routes = app_module.app.routes
    assert "/docs" in routes, "app.py must route GET /docs to docs_page.page_response"
    return routes


def call(routes: Any, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The Lambda entry point's answer to GET path (header names in lower case)."""
    response = app_module.app(event(routes, "GET", path, headers=headers), None)
    response["headers"] = {k.lower(): v for k, v in response["headers"].items()}
    return response


def spec_operations(spec: dict) -> set[tuple[str, str, str]]:
    """(METHOD, path, operationId) of every operation of an OpenAPI document."""
    return {(method.upper(), path, operation.get("operationId", ""))
            for section in ("paths", "webhooks")  # Swagger UI lists webhooks too
            for path, item in spec.get(section, {}).items()
            for method, operation in item.items() if method in HTTP_METHODS}


class PageParser(HTMLParser):
    """The URLs a page refers to and whatever it has inline that a CSP restricts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "formaction", "poster", "srcset"):
                self.urls.append(value or "")
            if name == "style" or name.startswith("on"):
                self.inline.append(f"<{tag} {name}=...>")
        if tag in ("script", "style"):
            self._open = tag
        if tag in ("base", "iframe", "object", "embed", "meta") and (
                tag != "meta" or any(n == "http-equiv" for n, _ in attrs)):
            self.inline.append(f"<{tag}>")

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def handle_data(self, data: str) -> None:
        if self._open and data.strip():
            self.inline.append(f"<{self._open}> {data.strip()[:60]}")


def page_urls(routes: Any) -> list[str]:
    parser = PageParser()
    parser.feed(call(routes, "/docs")["body"])
    assert parser.inline == []
    return parser.urls


def asset_paths(routes: Any) -> list[str]:
    """The app paths of the files the page loads (its URLs are relative to /docs)."""
    return ["/" + url for url in page_urls(routes) if url.startswith("docs/")]


# -- the document


def test_bundled_openapi_json_is_openapi_yaml():
    expected = docs_page.spec_file_text(SPEC_YAML.read_text(encoding="utf-8"))
    assert docs_page.SPEC_FILE.read_text(encoding="utf-8") == expected, (
        "chalicelib/docs_assets/openapi.json is stale: run "
        ".venv/bin/python -m chalicelib.docs_page")


def test_openapi_json_is_the_document_with_this_server(routes):
    response = call(routes, "/openapi.json")
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "application/json"
    served = json.loads(response["body"])
    assert served["servers"] == [{"url": ".", "description": served["servers"][0]["description"]}]
    document = docs_page.yaml_as_json(SPEC_YAML.read_text(encoding="utf-8"))
    assert {**served, "servers": document["servers"]} == document


# -- the page


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {name: sources for name, *sources in directives}


def test_docs_page_sets_a_strict_content_security_policy(routes):
    response = call(routes, "/docs")
    assert response["statusCode"] == 200
    headers = response["headers"]
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["x-content-type-options"] == "nosniff"
    csp = csp_directives(headers["content-security-policy"])
    for name in ("default-src", "base-uri", "form-action", "frame-ancestors"):
        assert csp[name] == ["'none'"], name
    for name in ("script-src", "style-src", "connect-src"):
        assert csp[name] == ["'self'"], name
    assert csp["img-src"] == ["'self'", "data:"]
    assert set(csp) <= {"default-src", "script-src", "style-src", "img-src", "connect-src",
                        "base-uri", "form-action", "frame-ancestors"}


def test_docs_page_loads_only_its_own_files_and_nothing_inline(routes):
    body = call(routes, "/docs")["body"]
    assert "http:" not in body and "https:" not in body and "//" not in body
    urls = page_urls(routes)  # no inline script, style, event handler or <base>
    assert urls, body
    for url in urls:
        parts = urlsplit(url)
        # Relative to the page (so it works at /<stage>/docs), or data:.
        assert parts.scheme in ("", "data") and not parts.netloc and not url.startswith("/")
    paths = asset_paths(routes)
    assert sorted(urls) == sorted([*(p[1:] for p in paths), "data:,", "openapi.json"])
    build = docs_page.site().build
    assert {p.rsplit("/", 1)[1] for p in paths} == {
        "swagger-ui.css", "docs.css", "swagger-ui-bundle.js", "docs.js"}
    assert all(p.startswith(f"/docs/{build}/") for p in paths)


def test_own_script_and_styles_name_no_other_host(routes):
    for path in asset_paths(routes):
        body = call(routes, path)["body"]
        if path.endswith("/docs.js") or path.endswith("/docs.css"):
            assert "http:" not in body and "https:" not in body, path
        if path.endswith(".css"):
            # Every url(...) of the styles is a data: URI.
            for chunk in body.split("url(")[1:]:
                assert chunk.lstrip("\"'").startswith("data:"), (path, chunk[:80])
            assert "@import" not in body and "sourceMappingURL" not in body, path


def test_docs_page_is_cached_briefly_and_revalidated(routes):
    response = call(routes, "/docs")
    headers = response["headers"]
    assert headers["cache-control"] == "public, max-age=300"
    etag = headers["etag"]
    again = call(routes, "/docs", headers={"If-None-Match": etag})
    assert again["statusCode"] == 304 and again["body"] == ""
    assert again["headers"]["etag"] == etag
    assert again["headers"]["cache-control"] == "public, max-age=300"
    other = call(routes, "/docs", headers={"If-None-Match": '"elsewhere"'})
    assert other["statusCode"] == 200
    spec = call(routes, "/openapi.json")
    assert spec["headers"]["cache-control"] == "public, max-age=300"
    assert call(routes, "/openapi.json", headers={"If-None-Match": f'W/{spec["headers"]["etag"]}'}
                )["statusCode"] == 304


def test_page_files_answer_200_and_are_cached_for_a_year(routes):
    kinds = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    for path in asset_paths(routes):
        response = call(routes, path)
        assert response["statusCode"] == 200, path
        headers = response["headers"]
        assert headers["content-type"] == kinds[Path(path).suffix], path
        assert headers["cache-control"] == f"public, max-age={YEAR}, immutable", path
        assert headers["x-content-type-options"] == "nosniff", path
        assert isinstance(response["body"], str) and not response.get("isBase64Encoded"), path


def test_license_texts_are_served_beside_the_bundle(routes):
    build = docs_page.site().build
    for name in ("LICENSE", "NOTICE", "swagger-ui-bundle.js.LICENSE.txt"):
        response = call(routes, f"/docs/{build}/{name}")
        assert response["statusCode"] == 200, name
        assert response["headers"]["content-type"] == "text/plain; charset=utf-8"
    assert "Apache License" in call(routes, f"/docs/{build}/LICENSE")["body"]


def test_unknown_file_or_earlier_build_is_404(routes):
    build = docs_page.site().build
    for path in (f"/docs/{build}/app.py", f"/docs/{build}/openapi.json",
                 f"/docs/{build}/..", "/docs/0000000000000000/docs.js"):
        response = call(routes, path)
        assert response["statusCode"] == 404, path
        assert response["headers"]["cache-control"] == "no-store"


def test_docs_with_a_trailing_slash_redirects_to_docs(routes):
    request = event(routes, "GET", "/docs")
    request["path"] = "/docs/"
    request["requestContext"]["path"] += "/"
    response = app_module.app(request, None)
    assert response["statusCode"] == 301
    assert response["headers"]["Location"] == "../docs"  # /api/docs/ -> /api/docs


def test_every_answer_fits_a_lambda_response(routes):
    build = docs_page.site().build
    paths = ["/docs", "/openapi.json", *(f"/docs/{build}/{name}" for name in docs_page.SERVED)]
    for path in paths:
        size = len(json.dumps(call(routes, path)))  # as the runtime sends it, escaped ASCII
        print(f"{path}: {size / 2**20:.2f} MiB")
        assert size < LAMBDA_RESPONSE_LIMIT * 0.5, path


def test_bundled_swagger_ui_is_the_npm_release_unchanged():
    for name, digest in SWAGGER_UI_DIST.items():
        data = (docs_page.ASSETS / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name
    served = set(docs_page.SERVED) | {"openapi.json"}
    bundled = {p.name for p in docs_page.ASSETS.iterdir()}
    assert bundled == served, "a bundled file that nothing serves, or a missing one"


# -- in a browser

class DocsPage(Page):
    """The docs page in a tab."""

    def show_docs(self) -> None:
        """Waits until Swagger UI shows the document's operations."""
        self.wait_for("document.querySelectorAll('.opblock').length > 0")

    def try_out(self, method: str, path: str) -> tuple[str, str]:
        """Opens an operation, presses "Try it out" and "Execute"; the status
        and body that the page then shows."""
        block = (f"[...document.querySelectorAll('.opblock-{method.lower()}')].find((b) =>"
                 f" b.querySelector('.opblock-summary [data-path]').dataset.path === '{path}')")
        self.evaluate(f"{block}.querySelector('.opblock-summary-control').click()")
        self.wait_for(f"!!{block}.querySelector('.try-out__btn')")
        self.evaluate(f"{block}.querySelector('.try-out__btn').click()")
        self.wait_for(f"!!{block}.querySelector('.execute')")
        self.evaluate(f"{block}.querySelector('.execute').click()")
        response = f"{block}.querySelector('.live-responses-table .response')"
        status = self.wait_for(f"{response}?.querySelector('.response-col_status')"
                               "?.textContent.trim()")
        body = self.wait_for(f"{response}.querySelector('.response-col_description pre')"
                             "?.textContent")
        return status, body


@pytest.fixture(scope="module")
def chromium(routes) -> Any:
    yield from started_chromium("docs-chromium-")


@pytest.fixture(scope="module")
def docs_in_browser(chromium, live) -> Page:
    """/docs of the live server open in Chromium, once its operations show."""
    page = chromium.open(live["base"] + "/docs", DocsPage)
    page.show_docs()
    return page


@pytest.fixture(scope="module")
def staged(live) -> Any:
    """The live server under a prefix, as API Gateway serves a stage (/api/docs)."""

    class Forward(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.startswith("/api/"):
                self.send_error(404)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            upstream = requests.get(live["base"] + self.path[len("/api"):], headers=headers,
                                    timeout=30, allow_redirects=False)
            self.send_response(upstream.status_code)
            for name, value in upstream.headers.items():
                if name.lower() not in ("connection", "content-length", "transfer-encoding",
                                        "content-encoding", "keep-alive", "date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(upstream.content)))
            self.end_headers()
            self.wfile.write(upstream.content)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api"
    finally:
        server.shutdown()
        server.server_close()


# Every operation block: [METHOD, path, operationId] (displayOperationId is on;
# a deprecated operation's path is in .opblock-summary-path__deprecated).
DOM_OPERATIONS = """[...document.querySelectorAll('.opblock')].map((b) => [
  b.querySelector('.opblock-summary-method').textContent,
  b.querySelector('.opblock-summary [data-path]').dataset.path,
  (b.querySelector('.opblock-summary-operation-id') || {}).textContent || ''])"""


@pytest.mark.slow
def test_docs_page_lists_every_operation_of_the_document(docs_in_browser):
    spec = docs_page.yaml_as_json(SPEC_YAML.read_text(encoding="utf-8"))
    title = docs_in_browser.wait_for("document.querySelector('.info .title')?.textContent")
    assert spec["info"]["title"] in title
    shown = {tuple(op) for op in docs_in_browser.evaluate(DOM_OPERATIONS)}
    assert shown == spec_operations(spec)


@pytest.mark.slow
def test_try_it_out_calls_health_on_the_same_origin(docs_in_browser, live):
    status, body = docs_in_browser.try_out("GET", "/health")
    assert status == "200"
    assert json.loads(body) == {"status": "ok", "database": "ok"}
    assert live["base"] + "/health" in docs_in_browser.requested_urls()


@pytest.mark.slow
def test_no_request_left_the_origin_and_nothing_was_refused(docs_in_browser, live):
    page = docs_in_browser
    urls = page.requested_urls()
    assert live["base"] + "/openapi.json" in urls
    assert [u for u in urls if not u.startswith((live["base"] + "/", "data:"))] == []
    assert page.evaluate("window.__cspViolations") == []
    assert page.errors() == []
    # The checks would see a refusal: an image from elsewhere is one.
    page.evaluate("document.body.append(Object.assign(document.createElement('img'),"
                  " {src: 'https://example.com/x.png'}))")
    page.wait_for("window.__cspViolations.length")
    assert page.evaluate("window.__cspViolations") == ["img-src https://example.com/x.png"]
    assert "https://example.com/x.png" in page.requested_urls() and page.errors()


@pytest.mark.slow
def test_docs_under_a_stage_prefix_try_it_out_there(chromium, staged):
    # /api/docs/ (API Gateway routes it to /docs) redirects to /api/docs.
    assert requests.get(staged + "/docs/", timeout=30).url == staged + "/docs"
    page = chromium.open(staged + "/docs", DocsPage)
    page.show_docs()
    status, body = page.try_out("GET", "/health")
    assert status == "200" and json.loads(body)["status"] == "ok"
    urls = page.requested_urls()
    assert staged + "/openapi.json" in urls and staged + "/health" in urls
    assert [u for u in urls if not u.startswith((staged + "/", "data:"))] == []
    assert page.evaluate("window.__cspViolations") == [] and page.errors() == []
