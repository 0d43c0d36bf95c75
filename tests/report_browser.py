"""Lay a report out in Debian's Chromium (headless) and measure it: page width, overflowing elements,
ids broken inside a part, chart label sizes; and take screenshots to look at.

The report's Content-Security-Policy forbids scripts, so the measuring copy drops that one meta tag
and appends a script that writes its measurements into the DOM (`--dump-dom` prints it); the CSS
and markup laid out are the report's own. Headless Chromium will not make a window narrower than
500 px, so the report is laid out in an iframe exactly `width` CSS pixels wide (its own viewport:
media queries see `width`), inside a page wide enough for it; `srcdoc` keeps both in one origin.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
_CSP = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>')
MEASURE = """
<script>
(function () {
  const vw = document.documentElement.clientWidth;
  const out = {viewport: vw, scrollWidth: document.documentElement.scrollWidth, overflowing: [], broken: [],
               chartLabels: [], zoneLabels: 0};
  const describe = (el) => el.tagName.toLowerCase() + (el.className && el.className.baseVal === undefined ?
      '.' + String(el.className).split(' ').join('.') : '') + ': ' + (el.textContent || '').trim().slice(0, 80);
  for (const el of document.querySelectorAll('main *')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > vw + 0.5 || r.left < -0.5) out.overflowing.push(describe(el) + ' right=' + Math.round(r.right));
  }
  const text = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
  let t;
  while ((t = text.nextNode())) {
    if (!t.data.trim()) continue;
    const range = document.createRange(); range.selectNodeContents(t);
    for (const r of range.getClientRects()) {
      if (r.width > 0 && (r.right > vw + 0.5 || r.left < -0.5)) {
        out.overflowing.push('text: ' + t.data.trim().slice(0, 80) + ' right=' + Math.round(r.right)); break;
      }
    }
  }
  for (const el of document.querySelectorAll('.mono, .cmd')) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode())) {
      const re = /\\S+/g; let m;
      while ((m = re.exec(node.data))) {
        // A line may end after a separator ('/', '-', ':' ...): between two parts of an id. A line
        // that ends between two letters or digits has broken a part in two.
        let previousTop = null;
        for (let i = 0; i < m[0].length; i++) {
          const range = document.createRange();
          range.setStart(node, m.index + i); range.setEnd(node, m.index + i + 1);
          const rect = Array.from(range.getClientRects()).find(x => x.width > 0);
          if (!rect) continue;
          const top = Math.round(rect.top);
          if (previousTop !== null && top !== previousTop && /[A-Za-z0-9]/.test(m[0][i - 1])) {
            out.broken.push(m[0]); break;
          }
          previousTop = top;
        }
      }
    }
  }
  for (const svg of document.querySelectorAll('svg.chart')) {
    const box = svg.getBoundingClientRect();
    if (box.width === 0) continue;
    for (const t of svg.querySelectorAll('text')) {
      const r = t.getBoundingClientRect();
      out.chartLabels.push({text: t.textContent, height: r.height, left: r.left, right: r.right,
                            inside: r.left >= box.left - 0.5 && r.right <= box.right + 0.5});
      if (t.classList.contains('zone') && r.height > 0) out.zoneLabels += 1;
    }
  }
  const host = window.parent.document;
  const pre = host.createElement('pre'); pre.id = 'layout-measurements';
  pre.textContent = JSON.stringify(out); host.body.appendChild(pre);
})();
</script>
"""


def _run(args: list[str], profile: Path) -> str:
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def _framed(report_html: str, width: int, height: int) -> str:
    import html as html_module

    return (
        '<!doctype html><html><head><meta charset="utf-8"><style>body{margin:0}iframe{border:0;display:block}</style>'
        f'</head><body><iframe width="{width}" height="{height}" '
        f'srcdoc="{html_module.escape(report_html, quote=True)}"></iframe></body></html>'
    )


def measure(html: Path, width: int, height: int = 900) -> dict[str, Any]:
    """Layout measurements of `html` at a viewport `width` CSS pixels wide."""
    with tempfile.TemporaryDirectory(prefix="irf-chromium-") as tmp:
        page = Path(tmp) / "measure.html"
        measuring = _CSP.sub("", html.read_text()).replace("</body>", MEASURE + "</body>")
        page.write_text(_framed(measuring, width, height))
        dom = _run(
            [
                "--dump-dom",
                "--virtual-time-budget=5000",
                f"--window-size={max(width, 500) + 20},{height}",
                page.as_uri(),
            ],
            Path(tmp) / "profile",
        )
    found = re.search(r'<pre id="layout-measurements">(.*?)</pre>', dom, re.DOTALL)
    if not found:
        raise RuntimeError("the measuring script wrote nothing (did the page load?)")
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return dict(json.loads(text))


def screenshot(html: Path, width: int, out: Path, height: int = 2400, *, scrolled: int = 0) -> Path:
    """A PNG of the report as a reader sees it at `width` (the report's own markup, CSP and all),
    `scrolled` CSS pixels down the page."""
    with tempfile.TemporaryDirectory(prefix="irf-chromium-") as tmp:
        page = Path(tmp) / "shot.html"
        framed = _framed(html.read_text(), width, height + scrolled)
        if scrolled:
            framed = framed.replace("<iframe ", f'<iframe style="margin-top:-{scrolled}px" ', 1)
        page.write_text(framed)
        _run([f"--screenshot={out}", f"--window-size={max(width, 500)},{height}", page.as_uri()], Path(tmp) / "profile")
    return out
