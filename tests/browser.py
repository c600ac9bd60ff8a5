"""Drive a real headless Chromium without extra Python packages.

:func:`render` loads a copy of an HTML file with a probe injected (errors and console output
caught from the first script on, and after load a JSON summary of every Plotly figure written
into the DOM), runs ``chromium --headless --dump-dom`` with every host name mapped to nothing
(so no request can leave the machine) and a network log, and returns the summary together with
the URLs the page requested. :func:`screenshot` writes a PNG.

Under ``CI=true`` a missing browser fails the test; elsewhere it skips.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)

HEAD_PROBE = """<script>
window.__probe = {errors: [], console: []};
window.addEventListener("error", function (e) {
  window.__probe.errors.push("error: " + (e.message || (e.target && (e.target.src || e.target.href)) || e));
}, true);
window.addEventListener("unhandledrejection", function (e) {
  window.__probe.errors.push("unhandled rejection: " + (e.reason && e.reason.message || e.reason));
});
["error", "warn"].forEach(function (level) {
  var original = console[level];
  console[level] = function () {
    window.__probe.console.push(level + ": " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
});
</script>"""

BODY_PROBE = """<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var figures = [];
    document.querySelectorAll(".js-plotly-plot").forEach(function (div) {
      var traces = (div.data || []).map(function (t) {
        var n = t.x ? t.x.length : (t.y ? t.y.length : 0);
        return {name: t.name || "", type: t.type || "scatter", points: n};
      });
      figures.push({id: div.id, svgs: div.querySelectorAll("svg.main-svg").length,
                    drawn: div.querySelectorAll("g.trace").length, laidOut: !!div._fullLayout,
                    traces: traces, height: div.getBoundingClientRect().height});
    });
    var out = document.createElement("pre");
    out.id = "probe-result";
    out.textContent = JSON.stringify({
      figures: figures, errors: window.__probe.errors, console: window.__probe.console,
      svgs: document.querySelectorAll("svg.main-svg").length,
      plotly: typeof window.Plotly !== "undefined" ? window.Plotly.version : null,
      tableRows: document.querySelectorAll("#trials tbody tr").length
    });
    document.body.appendChild(out);
  }, 1500);
});
</script>"""


def find_chromium() -> str:
    """The Chromium binary; skips the test where there is none, fails it under ``CI=true``."""
    explicit = os.environ.get("REVPROF_CHROMIUM")
    for name in ([explicit] if explicit else []) + list(CANDIDATES):
        path = shutil.which(name)
        if path:
            return path
    message = ("no Chromium found (apt-get install -y chromium, or set REVPROF_CHROMIUM); "
               "the report's browser test needs it")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="revprof-chromium-") as profile:
        env = dict(os.environ, HOME=profile)
        return subprocess.run([find_chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout, env=env)


def render(page: Path, budget_ms: int = 20000, timeout: float = 90) -> dict[str, Any]:
    """Open ``page`` (a copy with the probe) headless; the probe's summary plus ``requests``:
    every URL in Chromium's network log."""
    page = Path(page).resolve()
    text = page.read_text(encoding="utf-8")
    text = text.replace("<head>", "<head>" + HEAD_PROBE, 1).replace("</body>", BODY_PROBE + "</body>", 1)
    probed = page.with_name(page.stem + ".probe.html")
    probed.write_text(text, encoding="utf-8")
    netlog = page.with_name(page.stem + ".netlog.json")
    done = _run([f"--virtual-time-budget={budget_ms}", f"--log-net-log={netlog}",
                 "--net-log-capture-mode=Default", "--window-size=1400,1000", "--dump-dom",
                 probed.as_uri()], timeout)
    match = re.search(r'<pre id="probe-result">(.*?)</pre>', done.stdout, re.S)
    if match is None:
        raise AssertionError(f"the probe did not report (chromium exit {done.returncode}); "
                             f"stderr tail: {done.stderr[-2000:]}")
    summary = json.loads(html.unescape(match.group(1)))
    summary["requests"] = requested_urls(netlog)
    summary["stderr"] = done.stderr
    return summary


def requested_urls(netlog: Path) -> list[str]:
    """URLs the *page* asked the network stack for, from Chromium's network log.

    ``file:`` loads do not go through the network stack; Chromium's own background requests
    (update checks and the like, refused by the resolver rule anyway) carry the initiator
    ``not an origin`` and are left out.
    """
    if not netlog.exists():
        raise AssertionError(f"chromium wrote no network log at {netlog}")
    data = json.loads(netlog.read_text(encoding="utf-8", errors="replace"))
    start_job = data["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = set()
    for event in data.get("events", []):
        params = event.get("params") or {}
        if event.get("type") == start_job and params.get("url") \
                and params.get("initiator") != "not an origin":
            urls.add(params["url"])
    return sorted(urls)


def screenshot(page: Path, png: Path, size: tuple[int, int] = (1400, 4000), budget_ms: int = 20000,
               timeout: float = 90) -> Path:
    """A PNG of ``page`` rendered at ``size`` (width, height)."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    done = _run([f"--virtual-time-budget={budget_ms}", f"--window-size={size[0]},{size[1]}",
                 f"--screenshot={png}", Path(page).resolve().as_uri()], timeout)
    if not png.exists():
        raise AssertionError(f"no screenshot written (chromium exit {done.returncode}); "
                             f"stderr tail: {done.stderr[-2000:]}")
    return png


def external_references(text: str) -> list[str]:
    """``src``/``href`` attributes and CSS ``url()`` that point at a network address, outside the
    embedded plotly.js bundle (whose code merely mentions URLs as strings)."""
    outside = re.sub(r'<script id="plotlyjs"[^>]*>.*?</script>', "", text, count=1, flags=re.S)
    found = re.findall(r'(?:src|href)\s*=\s*["\']?\s*((?:https?:)?//[^"\'\s>]+)', outside, re.I)
    found += re.findall(r'url\(\s*["\']?((?:https?:)?//[^"\')]+)', outside, re.I)
    found += re.findall(r'@import\s+["\']?((?:https?:)?//[^"\';]+)', outside, re.I)
    return found
