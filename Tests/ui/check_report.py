#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Look at a `migtrace report` page as a user's browser shows it, and say what was seen (JSON on stdout).

Usage: check_report.py REPORT.html WORKDIR [--screenshot OUT.png]

Uses Debian's chromium (headless), tidy, python3-html5lib and python3-pil, all installed by scripts/setup.

  * valid HTML: html5lib's strict parser (every parse error of the HTML standard raises) and tidy's
    warnings and errors (none allowed);
  * offline: no URL in any attribute, style or script of the file, a Content-Security-Policy that forbids
    every fetch, and chromium's net log of the page load (through a proxy that points nowhere) holds no
    request but the file itself. A control page with one external image is loaded the same way first, to
    show that the net log does record such a request (the check would otherwise prove nothing);
  * interactive: in that copy, a click on the first finding band (the tip's text and the highlighted row)
    and a pointer move over the middle of the first chart (the values read out);
  * charts drawn: --dump-dom after the page's own script ran (the chart elements), the layout of every
    chart's plot area (a copy of the page with a script appended that writes the boxes into the DOM), a screenshot of
    the whole page, and per chart the pixels of each of its lines' colours inside the chart's box.

Exits 0 after writing its findings as JSON; the caller asserts on them. Exits 1 with a message on a failure
to run (chromium missing, …).
"""

import json
import os
import re
import subprocess
import sys
import time

import html5lib
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
WIDTH = 1200
# Stroke colours of the report's lines (HTMLReportSink's style sheet), by chart and line class.
LINE_COLOURS = {
    "bandwidth": {"bandwidth": (0x25, 0x63, 0xEB)},
    "pending": {"pending": (0x7C, 0x3A, 0xED), "threshold": (0xEA, 0x58, 0x0C)},
    "window": {"window": (0x0F, 0x76, 0x6E)},
    "limit": {"limit": (0xBE, 0x18, 0x5D)},
}
BACKGROUND = (255, 255, 255)


def chromium(args, workdir, timeout=60):
    """Run headless chromium with no network: every request goes to a proxy on a closed local port."""
    base = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", "--force-device-scale-factor=1",
        "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
        "--user-data-dir=" + os.path.join(workdir, "profile"),
    ]
    started = time.monotonic()
    p = subprocess.run(base + args, capture_output=True, text=True, timeout=timeout)
    return p, time.monotonic() - started


def requests_in_net_log(path):
    """The URLs of the requests a page made, from chromium's net log: a request's start names its initiator,
    which is the page's origin (`null` for a file) for the page's own requests and `not an origin` for the
    browser's (its update and sign-in checks, which the proxy swallows)."""
    log = json.load(open(path, encoding="utf-8"))
    types = log["constants"]["logEventTypes"]
    start = types["URL_REQUEST_START_JOB"]
    page, browser = set(), set()
    for e in log["events"]:
        p = e.get("params") or {}
        if e["type"] != start or "url" not in p:
            continue
        (browser if p.get("initiator") == "not an origin" else page).add(p["url"])
    return sorted(page), sorted(browser)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    report, workdir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    shot = sys.argv[sys.argv.index("--screenshot") + 1] if "--screenshot" in sys.argv else os.path.join(workdir, "report.png")
    os.makedirs(workdir, exist_ok=True)
    if not os.access(CHROMIUM, os.X_OK):
        sys.exit("check_report.py: %s is missing: run scripts/setup (it installs Debian's chromium)" % CHROMIUM)
    out = {"timings": {}}
    raw = open(report, "rb").read()
    html = raw.decode("utf-8")

    # 1. Valid HTML.
    try:
        html5lib.HTMLParser(strict=True).parse(raw)
        out["html5lib_errors"] = []
    except Exception as e:  # html5lib raises ParseError on the first error
        out["html5lib_errors"] = [str(e)]
    tidy = subprocess.run(["tidy", "-q", "-e", "--show-warnings", "yes", report], capture_output=True, text=True)
    out["tidy_status"] = tidy.returncode
    out["tidy_messages"] = [l for l in tidy.stderr.splitlines() if l.strip()]

    # 2. Nothing external in the file.
    out["external_references"] = sorted(set(
        re.findall(r'\b(?:src|href|xlink:href|action|srcset|poster|data)\s*=\s*"[^"]*"', html)
        + re.findall(r"url\s*\(", html) + re.findall(r"@import", html) + re.findall(r"(?:https?|ftp|wss?):", html)
        + re.findall(r"\bfetch\s*\(|XMLHttpRequest|WebSocket|EventSource|sendBeacon|\bimport\s*\(", html)))
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    out["csp"] = csp.group(1) if csp else None

    # 3. The control page: the net log does record an external request.
    control = os.path.join(workdir, "control.html")
    with open(control, "w") as f:
        f.write('<!DOCTYPE html><html><head><meta charset="utf-8"><title>c</title></head>'
                '<body><img src="http://192.0.2.1/net-log-control.png" alt=""></body></html>\n')
    control_log = os.path.join(workdir, "control-netlog.json")
    _, out["timings"]["control_s"] = chromium(
        ["--log-net-log=" + control_log, "--virtual-time-budget=3000", "--dump-dom", "file://" + control], workdir)
    out["control_requests"], _ = requests_in_net_log(control_log)

    # 4. The DOM after the page's script ran.
    dom_run, out["timings"]["dump_dom_s"] = chromium(["--dump-dom", "file://" + report], workdir)
    dom = html5lib.parse(dom_run.stdout, namespaceHTMLElements=False)
    for e in dom.iter():  # SVG elements come back namespaced: `{http://www.w3.org/2000/svg}svg`
        if isinstance(e.tag, str) and e.tag.startswith("{"):
            e.tag = e.tag.split("}", 1)[1]
    charts = [e for e in dom.iter() if e.tag == "svg" and "chart" in (e.get("class") or "").split()]
    out["charts"] = [e.get("data-chart") for e in charts]
    out["chart_lines"] = [
        sorted(c.get("class").split()[1] for c in e.iter() if c.tag == "polyline" and "line" in (c.get("class") or ""))
        for e in charts]
    out["migrations"] = len([e for e in dom.iter() if e.tag == "section" and e.get("data-columns") is not None])
    out["bands"] = len([e for e in dom.iter() if e.tag == "rect" and "band" in (e.get("class") or "").split()])
    out["finding_rows"] = len([e for e in dom.iter() if e.tag == "tr" and e.get("data-f") is not None])
    out["switchover_marks"] = len([e for e in dom.iter() if e.tag == "line" and e.get("class") == "switchover"])
    out["verdicts"] = ["".join(e.itertext()) for e in dom.iter() if e.tag == "span" and "verdict" in (e.get("class") or "")]
    out["notes"] = ["".join(e.itertext()) for e in dom.iter() if e.tag == "p" and e.get("class") == "note"]
    out["title"] = "".join(next(e for e in dom.iter() if e.tag == "title").itertext())

    # 5. Layout: a copy with a script that writes each chart's box (CSS px, page coordinates) into the DOM.
    probe = os.path.join(workdir, "layout.html")
    layout_script = (
        '<pre id="layout-probe">'
        '</pre><script>(function(){var r=[];document.querySelectorAll("svg.chart").forEach(function(s){'
        'var b=s.querySelector("rect.plot").getBoundingClientRect();r.push({chart:s.getAttribute("data-chart"),x:b.left+scrollX,y:b.top+scrollY,'
        'w:b.width,h:b.height});});'
        # A user's click on the first finding band, and a move over the middle of the first chart.
        'var band=document.querySelector("rect.band"),tip=document.getElementById("tip"),clicked=null;'
        'if(band){var bb=band.getBoundingClientRect();band.dispatchEvent(new MouseEvent("click",{bubbles:true,'
        'clientX:bb.left+1,clientY:bb.top+1}));clicked={finding:band.getAttribute("data-f"),hidden:tip.hidden,'
        'text:tip.textContent,row:document.querySelector("tr.on")?document.querySelector("tr.on").id:null};}'
        'var svg=document.querySelector("svg.chart"),readout=null;if(svg){var sb=svg.querySelector("rect.plot")'
        '.getBoundingClientRect();svg.dispatchEvent(new MouseEvent("mousemove",{bubbles:true,clientX:sb.left+sb.width/2,'
        'clientY:sb.top+sb.height/2}));readout=svg.closest("section").querySelector(".readout").textContent;}'
        'document.getElementById("layout-probe").textContent=JSON.stringify({boxes:r,clicked:clicked,readout:readout,'
        'height:document.documentElement.scrollHeight});})();</script>')
    with open(probe, "w", encoding="utf-8") as f:
        f.write(html.replace("</body>", layout_script + "</body>"))
    layout_run, out["timings"]["layout_s"] = chromium(
        ["--window-size=%d,900" % WIDTH, "--dump-dom", "file://" + probe], workdir)
    m = re.search(r'<pre id="layout-probe">(.*?)</pre>', layout_run.stdout, re.S)
    if not m:
        sys.exit("check_report.py: the layout probe did not run: " + layout_run.stderr[-2000:])
    layout = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    height = int(layout["height"]) + 10
    out["clicked"] = layout["clicked"]
    out["readout"] = layout["readout"]

    # 6. Screenshot of the whole page, with the net log of that load.
    net_log = os.path.join(workdir, "netlog.json")
    shot_run, out["timings"]["screenshot_s"] = chromium(
        ["--window-size=%d,%d" % (WIDTH, height), "--log-net-log=" + net_log, "--screenshot=" + shot, "file://" + report],
        workdir)
    if not os.path.exists(shot):
        sys.exit("check_report.py: chromium wrote no screenshot: " + shot_run.stderr[-2000:])
    out["requests"], out["browser_requests"] = requests_in_net_log(net_log)
    out["screenshot"] = shot

    # 7. Pixels of each chart's lines inside its box.
    img = Image.open(shot).convert("RGB")
    px = img.load()
    out["chart_pixels"] = []
    for box in layout["boxes"]:
        x0, y0 = int(box["x"]), int(box["y"])
        x1, y1 = min(img.width, int(box["x"] + box["w"])), min(img.height, int(box["y"] + box["h"]))
        counts = {name: 0 for name in LINE_COLOURS[box["chart"]]}
        other = 0
        for y in range(y0, y1):
            for x in range(x0, x1):
                c = px[x, y]
                if c == BACKGROUND:
                    continue
                other += 1
                for name, ref in LINE_COLOURS[box["chart"]].items():
                    if all(abs(c[i] - ref[i]) <= 24 for i in range(3)):
                        counts[name] += 1
        out["chart_pixels"].append({"chart": box["chart"], "box": [x0, y0, x1 - x0, y1 - y0],
                                    "non_background": other, "line_pixels": counts})
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
