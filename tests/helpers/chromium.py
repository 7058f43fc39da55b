"""Test helper: open a page in headless Chromium and report what a reader would see.

Chromium is driven over the DevTools protocol through ``--remote-debugging-pipe``: commands go in
on the browser's file descriptor 3 and replies come out on 4, as NUL-terminated JSON. A pipe
needs no port, no websocket library and no network, and dies with the browser. Only Debian's
``chromium`` package is needed (no browser download, no driver).

``inspect_page`` loads a file, records console errors, uncaught exceptions and every request
the page makes, scrolls each ``figure.plot`` into view and measures it, and can save a
screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from archsearch.errors import ArchsearchError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
# Without the background-networking flags Chromium keeps dialling Google services, which a
# closed network refuses; --disable-quic likewise. Sandboxing needs privileges CI may lack.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
         "--remote-debugging-pipe")

# Maps the two pipe ends the parent passes to the descriptors 3 and 4 Chromium expects, then
# execs the browser. First copied above 10 so that neither dup2 overwrites the other end.
_LAUNCH = """
import fcntl, os, sys
r, w = (fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3])
os.dup2(r, 3); os.dup2(w, 4)
for fd in {r, w, *map(int, sys.argv[1:3])} - {3, 4}:
    os.close(fd)
os.execv(sys.argv[3], sys.argv[3:])
"""

_MEASURE = """
(async () => {
  const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const plots = [];
  for (const fig of document.querySelectorAll('figure.plot')) {
    fig.scrollIntoView({block: 'start', inline: 'nearest'});
    await frame();
    const el = fig.querySelector('svg, img, canvas') || fig;
    const r = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    const hit = document.elementFromPoint(
      Math.max(0, Math.min(r.left + r.width / 2, innerWidth - 1)),
      Math.max(0, Math.min(r.top + Math.min(r.height, innerHeight) / 2, innerHeight - 1)));
    plots.push({
      id: fig.id, tag: el.tagName.toLowerCase(), width: r.width, height: r.height,
      top: r.top,
      in_viewport: r.width > 0 && r.height > 0 && r.top >= -1 && r.top < innerHeight
                   && r.left >= -1 && r.right <= innerWidth + 1,
      shown: style.display !== 'none' && style.visibility !== 'hidden'
             && parseFloat(style.opacity) > 0 && !!hit && (hit === el || el.contains(hit)),
      marks: el.querySelectorAll ? el.querySelectorAll('path, use, image').length : 0,
    });
  }
  window.scrollTo(0, 0);
  await frame();
  return JSON.stringify({title: document.title, plots: plots,
                         viewport: [innerWidth, innerHeight],
                         scroll_width: document.documentElement.scrollWidth});
})()
"""


@dataclass(frozen=True)
class PlotBox:
    id: str
    tag: str  # svg, img or canvas
    width: float
    height: float
    top: float  # from the viewport's top, after scrolling to the plot
    in_viewport: bool  # after scrolling to it: top inside the viewport, not cut left or right
    shown: bool  # displayed, not transparent, and the topmost element at its centre
    marks: int  # drawn SVG elements (paths, uses, images): an empty plot has none


@dataclass(frozen=True)
class PageCheck:
    title: str
    plots: list[PlotBox]
    console: list[str]  # console errors, uncaught exceptions, failed loads
    requests: list[str]  # every URL the page asked for besides itself (data: excluded)
    viewport: tuple[int, int]
    scroll_width: int  # wider than the viewport means a horizontal scroll bar
    screenshot: Path | None = None
    log: list[str] = field(default_factory=list, repr=False)  # Chromium's stderr tail


def find_chromium() -> str | None:
    """Path of an installed Chromium (Debian's ``chromium``), or None."""
    for name in (os.environ.get("ARCHSEARCH_CHROMIUM", ""), *CANDIDATES):
        path = shutil.which(name) if name else None
        if path:
            return path
    return None


def inspect_page(
    page: str | Path,
    *,
    screenshot: str | Path | None = None,
    width: int = 1280,
    height: int = 900,
    timeout: float = 60.0,
) -> PageCheck:
    """Load ``page`` in headless Chromium at ``width`` x ``height`` and measure it."""
    file = Path(page).resolve()
    if not file.is_file():
        raise ArchsearchError(f"{file}: no such page")
    binary = find_chromium()
    if binary is None:
        raise ArchsearchError("no Chromium found: install Debian's 'chromium' package")
    with tempfile.TemporaryDirectory(prefix="archsearch-chromium-") as profile, \
            _Browser(binary, profile, width, height, timeout) as browser:
        session = browser.open_page()
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session=session)
        browser.call("Emulation.setDeviceMetricsOverride", session=session, width=width,
                     height=height, deviceScaleFactor=1, mobile=False)
        browser.call("Page.navigate", session=session, url=file.as_uri())
        browser.wait_for("Page.loadEventFired", session)
        result = browser.call("Runtime.evaluate", session=session, expression=_MEASURE,
                              awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise ArchsearchError(f"measuring the page failed: {result['exceptionDetails']}")
        measured = json.loads(result["result"]["value"])
        shot = None
        if screenshot is not None:
            shot = Path(screenshot)
            data = browser.call("Page.captureScreenshot", session=session, format="png")["data"]
            shot.parent.mkdir(parents=True, exist_ok=True)
            shot.write_bytes(base64.b64decode(data))
        console, requests = _problems(browser.events, file.as_uri())
        return PageCheck(
            title=measured["title"],
            plots=[PlotBox(**p) for p in measured["plots"]],
            console=console,
            requests=requests,
            viewport=tuple(measured["viewport"]),
            scroll_width=int(measured["scroll_width"]),
            screenshot=shot,
            log=browser.stderr_tail(),
        )


def _problems(events: list[dict[str, Any]], own_url: str) -> tuple[list[str], list[str]]:
    console, requests = [], []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            texts = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
            console.append("console." + params["type"] + ": " + " ".join(texts))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            console.append("exception: " + str(details.get("exception", {}).get(
                "description", details.get("text", ""))))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            console.append("log: " + str(params["entry"].get("text", "")))
        elif method == "Network.loadingFailed":
            console.append("failed load: " + str(params.get("errorText", "")))
        elif method == "Network.requestWillBeSent":
            url = str(params.get("request", {}).get("url", ""))
            if url != own_url and not url.startswith(("data:", "about:")):
                requests.append(url)
    return console, requests


class _Browser:
    """A Chromium process and its DevTools pipe: send commands, collect events."""

    def __init__(self, binary: str, profile: str, width: int, height: int, timeout: float):
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        self._buffer = b""
        self._replies: dict[int, dict[str, Any]] = {}
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)
        args = [binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                "about:blank"]
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _LAUNCH, str(to_browser_r), str(from_browser_w), *args],
                pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=self._stderr)
        finally:
            os.close(to_browser_r)
            os.close(from_browser_w)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._process.poll() is None:
                self._send("Browser.close", {}, None)
                self._process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            os.close(self._to_browser)
            os.close(self._from_browser)
            self._stderr.close()

    def stderr_tail(self, lines: int = 20) -> list[str]:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").splitlines()[-lines:]

    def open_page(self) -> str:
        """Attach to the page target (the about:blank tab), returning its session id."""
        deadline = time.monotonic() + self.timeout
        while True:
            targets = self.call("Target.getTargets")["targetInfos"]
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                break
            if time.monotonic() > deadline:
                target = self.call("Target.createTarget", url="about:blank")["targetId"]
                pages = [{"targetId": target}]
                break
            time.sleep(0.1)
        attached = self.call("Target.attachToTarget", targetId=pages[0]["targetId"], flatten=True)
        return str(attached["sessionId"])

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        ident = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while ident not in self._replies:
            self._pump(deadline, method)
        reply = self._replies.pop(ident)
        if "error" in reply:
            raise ArchsearchError(f"Chromium: {method}: {reply['error'].get('message')}")
        return dict(reply.get("result", {}))

    def wait_for(self, method: str, session: str | None) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            seen = len(self.events)
            self._pump(deadline, method)

    def _send(self, method: str, params: dict[str, Any], session: str | None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data):]
        return self._next_id

    def _pump(self, deadline: float, waiting_for: str) -> None:
        """Read what the browser sent; raise if it died or nothing came before the deadline."""
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([self._from_browser], [], [], max(0.0, remaining))
        if not ready:
            raise ArchsearchError(f"Chromium did not answer {waiting_for} within "
                                  f"{self.timeout:.0f} s; its log: {' | '.join(self.stderr_tail(5))}")
        chunk = os.read(self._from_browser, 1 << 20)
        if not chunk:
            raise ArchsearchError(f"Chromium exited while waiting for {waiting_for}; its log: "
                                  f"{' | '.join(self.stderr_tail(5))}")
        self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        for raw in messages:
            message = json.loads(raw)
            if "id" in message:
                self._replies[int(message["id"])] = message
            else:
                self.events.append(message)
