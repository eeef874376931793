"""A real browser for the site tests: headless Chromium, driven over the DevTools protocol.

Chromium is started with ``--remote-debugging-pipe``: it reads protocol messages (JSON, each ended
by a NUL byte) from file descriptor 3 and writes its answers and events to descriptor 4. That needs
only the standard library and the Debian ``chromium`` package (`make browser`): no driver binary,
no websocket client, no browser download. The methods used here (Target, Page, Runtime.evaluate,
Input.dispatchMouseEvent, Page.captureScreenshot) are the protocol's stable core:
https://chromedevtools.github.io/devtools-protocol/
"""

import base64
import fcntl
import itertools
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-pipe", "--window-size=1280,1000"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise AssertionError("no Chromium found: `make test` installs the Debian package chromium")


def _lift(fd: int) -> int:
    """The same pipe end on a descriptor above 9 (close-on-exec; pass_fds makes it inheritable)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class BrowserError(AssertionError):
    pass


class Browser:
    """One headless Chromium with one tab, driven over the DevTools pipe."""

    def __init__(self, user_data_dir: Path):
        self._log = open(user_data_dir.parent / "chromium.log", "wb")  # noqa: SIM115 (see close)
        # Lift the child's ends above 9 first, so that moving them to 3 and 4 overwrites neither.
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        to_browser_r, from_browser_w = _lift(to_browser_r), _lift(from_browser_w)
        # bash puts them on descriptors 3 and 4, where Chromium expects them, then becomes Chromium
        wire = (f"exec 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-;"
                ' exec "$@"')
        command = [chromium(), *FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"]
        self.proc = subprocess.Popen(["bash", "-c", wire, "chromium", *command],
                                     pass_fds=(to_browser_r, from_browser_w),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self._log)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._ids = itertools.count(1)
        self._buffer = b""
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        attached = self.call("Target.attachToTarget", targetId=target, flatten=True)
        self.session = attached["sessionId"]
        self.send("Page.enable")

    # -- the protocol ---------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise BrowserError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError(f"Chromium exited, see {self._log.name}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: str | None = None, timeout: float = 60, **params):
        """Send one command and return its result; events that arrive meanwhile are kept."""
        msg_id = next(self._ids)
        message = {"id": msg_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def send(self, method: str, timeout: float = 60, **params):
        """A command to the tab."""
        return self.call(method, session=self.session, timeout=timeout, **params)

    def wait_event(self, name: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == name:
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))

    # -- what the tests use ---------------------------------------------------------------------
    def open(self, url: str, timeout: float = 60) -> None:
        """Load ``url`` and wait for its load event (scripts and images done)."""
        self.events.clear()
        error = self.send("Page.navigate", url=url).get("errorText")
        if error:
            raise BrowserError(f"{url}: {error}")
        self.wait_event("Page.loadEventFired", timeout=timeout)

    def js(self, expression: str, timeout: float = 60):
        """Evaluate ``expression`` in the page (promises awaited) and return its JSON value."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True, timeout=timeout)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:200]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20, every: float = 0.1):
        """Poll ``expression`` until it is truthy; return its value, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(every)
        return None

    def click(self, selector: str) -> None:
        """A real mouse click (press, release) on the element's centre, scrolled into view."""
        box = self.js(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            if (!el) return null;
            el.scrollIntoView({{block: "center"}});
            const r = el.getBoundingClientRect();
            return {{x: r.left + r.width / 2, y: r.top + r.height / 2, w: r.width, h: r.height}};
        }})()""")
        if not box or not box["w"] or not box["h"]:
            raise BrowserError(f"nothing visible to click at {selector!r}: {box}")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"],
                      button="left", clickCount=1)

    def screenshot(self, path: Path) -> None:
        """A PNG of the viewport (the top of the page, 1280 px wide)."""
        png = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(png))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except BrowserError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._log.close()


@pytest.fixture(scope="session")
def browser():
    """The one Chromium the site tests share (started once: about a second)."""
    HTML.parent.mkdir(exist_ok=True)
    chrome = Browser(HTML.parent / ".chromium")
    yield chrome
    chrome.close()
