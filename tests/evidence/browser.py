"""Headless Debian chromium driven over the DevTools protocol on a pipe (stdlib only).

`--remote-debugging-pipe` speaks CDP as NUL-terminated JSON on file descriptors 3 (to the
browser) and 4 (from it), so no websocket library is needed. Used by the report tests to load
a page, collect every console message and uncaught exception, query the DOM and screenshot it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: How long one DevTools command or awaited event may take. A healthy browser answers in
#: milliseconds; a cold chromium on a 2-core machine that also runs the suite's twins took
#: over 30 s once. A deadline, not a pause: it only bounds a browser that never answers.
WAIT = 120.0

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
         "--remote-debugging-pipe"]


def find_chromium() -> str | None:
    """Path of Debian's chromium, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass(slots=True)
class Console:
    """What the page said: console messages and log entries by level, and exceptions."""

    messages: list[tuple[str, str]] = field(default_factory=list)  # (level, text)
    exceptions: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [t for lvl, t in self.messages if lvl in ("error", "assert")] + self.exceptions


class Chromium:
    """One headless browser with one page; use as a context manager."""

    def __init__(self, user_data_dir: Path, width: int = 1240, height: int = 1600) -> None:
        exe = find_chromium()
        if exe is None:
            raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
        self.width, self.height = width, height
        to_browser_r, self._w = os.pipe()
        self._r, from_browser_w = os.pipe()

        def as_fds_3_and_4() -> None:
            # the child must see the pipe ends as fds 3 and 4 (--remote-debugging-pipe);
            # move them out of the way first, since either may itself be 3 or 4
            a = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 100)
            b = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 100)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={user_data_dir}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=as_fds_3_and_4)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        self.session = ""

    def __enter__(self) -> Chromium:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(domain, session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=self.width,
                  height=self.height, deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):  # already gone: it is still reaped below
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self._w)
        os.close(self._r)

    # -- protocol -------------------------------------------------------------------------
    def call(self, method: str, session: bool = False, timeout: float = WAIT,
             **params: Any) -> dict[str, Any]:
        """Send one command and wait for its result (events that arrive meanwhile are kept)."""
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for reply in self._read(deadline, method):
                if reply.get("id") == self._next:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
                self.events.append(reply)

    def _read(self, deadline: float, awaited: str) -> list[dict[str, Any]]:
        remaining = deadline - time.monotonic()
        ready = select.select([self._r], [], [], remaining)[0] if remaining > 0 else []
        if not ready:
            raise TimeoutError(f"chromium did not answer {awaited} in time")
        chunk = os.read(self._r, 1 << 20)
        if not chunk:
            raise ConnectionError("chromium closed the DevTools pipe")
        self._buf += chunk
        *complete, self._buf = self._buf.split(b"\0")
        return [json.loads(c) for c in complete if c]

    def wait_event(self, method: str, timeout: float = WAIT) -> dict[str, Any]:
        """Block until an event named `method` has arrived (returns the first one)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.extend(self._read(deadline, method))

    # -- page -----------------------------------------------------------------------------
    def open(self, path: Path) -> Console:
        """Load a local file and wait for the load event; return what the console said."""
        self.events.clear()
        self.call("Page.navigate", session=True, url=path.resolve().as_uri())
        self.wait_event("Page.loadEventFired")
        self.evaluate("new Promise(r => requestAnimationFrame(() => r(1)))")
        console = Console()
        for event in self.events:
            params = event.get("params", {})
            if event.get("method") == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", "")))
                                for a in params.get("args", []))
                console.messages.append((params.get("type", ""), text))
            elif event.get("method") == "Log.entryAdded":
                entry = params.get("entry", {})
                console.messages.append((entry.get("level", ""), entry.get("text", "")))
            elif event.get("method") == "Runtime.exceptionThrown":
                console.exceptions.append(str(params.get("exceptionDetails", {})))
        return console

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.call("Runtime.evaluate", session=True, expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """A PNG of the page (the whole scrollable page when `full_page`)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            width = self.evaluate("document.documentElement.scrollWidth")
            height = self.evaluate("document.documentElement.scrollHeight")
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", session=True, **params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def media(self, kind: str) -> None:
        """Lay the page out for 'print' or 'screen' (print CSS without printing)."""
        self.call("Emulation.setEmulatedMedia", session=True, media=kind)

    def pdf(self, path: Path) -> Path:
        """Print the page to PDF as a browser would (print CSS applies)."""
        data = self.call("Page.printToPDF", session=True, printBackground=True,
                         preferCSSPageSize=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def clip(self, path: Path, selector: str, index: int = 0) -> Path:
        """A PNG of one element (the `index`-th match of a CSS selector)."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelectorAll({json.dumps(selector)})[{index}]"
            ".getBoundingClientRect(); return {x: r.x + scrollX, y: r.y + scrollY, "
            "width: r.width, height: r.height}; })()")
        data = self.call("Page.captureScreenshot", session=True, format="png",
                         captureBeyondViewport=True, clip={**box, "scale": 1})["data"]
        path.write_bytes(base64.b64decode(data))
        return path
