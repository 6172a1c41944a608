"""Headless Chromium for the tests of pages a person looks at (the docs page,
the tracking page): driven over the DevTools protocol through a pipe, offline
(every host but 127.0.0.1 fails to resolve). The browser: CHROMIUM (a path), else
Debian's /usr/bin/chromium, else a chromium or Chrome on PATH. Skipped without
one, unless REQUIRE_BROWSER=1 (the CI files set it): then that is a failure."""

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _find_chromium() -> Path | None:
    given = os.environ.get("CHROMIUM")
    if given:
        return Path(given)
    if Path("/usr/bin/chromium").exists():
        return Path("/usr/bin/chromium")
    for name in ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


CHROMIUM = _find_chromium()
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Offline: every host but the local server's fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
# Records the page's CSP violations (a script added over the DevTools protocol
# is not subject to the page's CSP).
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""
# Starts Chromium (argv[3:]) with the pipe ends argv[1] and argv[2] as its fds 3 and 4.
_LAUNCH_WITH_PIPES = (
    "import fcntl, os, sys\n"
    "high = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3]]\n"
    "os.dup2(high[0], 3); os.dup2(high[1], 4)\n"
    "for fd in {*high, *map(int, sys.argv[1:3])} - {3, 4}: os.close(fd)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n")


class Chromium:
    """Headless Chromium driven over the DevTools protocol through a pipe
    (--remote-debugging-pipe: JSON messages ended by NUL, commands to the
    browser's fd 3, answers and events from its fd 4)."""

    def __init__(self, workdir: Path) -> None:
        """Starts Chromium with a new profile in workdir, its output in workdir/log."""
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        self.log = workdir / "log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _LAUNCH_WITH_PIPES, str(to_browser_r),
                 str(from_browser_w), str(CHROMIUM), *CHROMIUM_FLAGS,
                 f"--user-data-dir={workdir / 'profile'}", "--remote-debugging-pipe",
                 "about:blank"],
                pass_fds=(to_browser_r, from_browser_w), stdout=log, stderr=subprocess.STDOUT)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: dict[str | None, list[dict[str, Any]]] = {}  # by session

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                output = self.log.read_text(errors="replace")
                raise RuntimeError("Chromium closed the pipe:\n" + output[-2000:])
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method: str, session: str | None = None, timeout: float = 30,
             **params: Any) -> dict[str, Any]:
        """Sends a command (to a page's session, or to the browser); returns its result."""
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            command["sessionId"] = session
        os.write(self._to_browser, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            if "method" in message:
                self.events.setdefault(message.get("sessionId"), []).append(message)

    def open(self, url: str, kind: type | None = None, width: int | None = None,
             height: int = 800, javascript: bool = True) -> Any:
        """A new tab (a Page, or `kind`) at url; width: emulate a screen that wide
        (a phone's below 600 px); javascript=False: with scripts switched off."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        page = (kind or Page)(self, self.send("Target.attachToTarget", targetId=target,
                                              flatten=True)["sessionId"])
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        if width is not None:
            page.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                      deviceScaleFactor=1, mobile=width < 600)
        if javascript:
            page.send("Page.addScriptToEvaluateOnNewDocument", source=RECORD_CSP_VIOLATIONS)
        else:
            page.send("Emulation.setScriptExecutionDisabled", value=True)
        page.send("Page.navigate", url=url)
        return page


class Page:
    """A tab of Chromium and what happened in it."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser, self.session = browser, session

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.send(method, session=self.session, **params)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        """The first truthy value of expression, evaluated every 0.1 s."""
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"never true: {expression}")
            time.sleep(0.1)
        return value

    def _events(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.browser.events.get(self.session, [])
                if e["method"] == method]

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for, including requests the CSP then blocked."""
        return [e["request"]["url"] for e in self._events("Network.requestWillBeSent")]

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and the browser's errors (CSP's among them)."""
        return ([json.dumps(e["exceptionDetails"])[:500]
                 for e in self._events("Runtime.exceptionThrown")]
                + [json.dumps(e["args"])[:500] for e in self._events("Runtime.consoleAPICalled")
                   if e["type"] == "error"]
                + [f"{e['entry'].get('url')}: {e['entry']['text']}"
                   for e in self._events("Log.entryAdded") if e["entry"]["level"] == "error"])

    def wait_event(self, method: str, count: int = 1, timeout: float = 30) -> dict[str, Any]:
        """The count-th event of that method in this tab, waiting for it."""
        deadline = time.monotonic() + timeout
        while len(self._events(method)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method}")
            self.browser.send("Browser.getVersion")  # reads the events that came meanwhile
            time.sleep(0.05)
        return self._events(method)[count - 1]

    def html(self, selector: str) -> str | None:
        """The outer HTML of the first element the selector finds, read through the
        DOM domain (works with scripts off); None when there is none."""
        root = self.send("DOM.getDocument", depth=0)["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        return self.send("DOM.getOuterHTML", nodeId=node)["outerHTML"] if node else None

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page."""
        import base64

        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def started_chromium(prefix: str) -> Iterator[Chromium]:
    """A Chromium for a module's tests (a fixture's body), or a skip."""
    if CHROMIUM is None or not CHROMIUM.exists():
        why = ("no Chromium: the browser tests need one (apt-get install chromium, "
               "or CHROMIUM=<path>)")
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(why + "; REQUIRE_BROWSER=1 makes that a failure")
        pytest.skip(why)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    browser = Chromium(workdir)
    try:
        yield browser
    finally:
        browser.close()
        shutil.rmtree(workdir, ignore_errors=True)
