#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Turn a terminal screen captured with `tmux capture-pane -e -p` into an HTML page that looks like the
terminal (dark background, monospace, the SGR colours tmux kept), for a chromium screenshot.

Usage: ansi_to_html.py SCREEN.txt OUT.html COLUMNS ROWS
"""
import html
import re
import sys

COLOURS = {30: "#1d232b", 31: "#f87171", 32: "#4ade80", 33: "#facc15", 34: "#60a5fa", 35: "#e879f9",
           36: "#22d3ee", 37: "#e5e7eb"}
for k in range(8):
    COLOURS[90 + k] = COLOURS[30 + k]


def convert(text):
    out, fg, bold = [], None, False
    opened = False
    for part in re.split(r"(\x1b\[[0-9;]*m)", text):
        if part.startswith("\x1b["):
            codes = [int(c) for c in part[2:-1].split(";") if c] or [0]
            for c in codes:
                if c == 0:
                    fg, bold = None, False
                elif c == 1:
                    bold = True
                elif c == 22:
                    bold = False
                elif c == 39:
                    fg = None
                elif c in COLOURS:
                    fg = COLOURS[c]
            continue
        if not part:
            continue
        style = (["color:" + fg] if fg else []) + (["font-weight:700"] if bold else [])
        # Any other escape left in the capture is shown, not interpreted.
        part = html.escape(part.replace("\x1b", "\\x1B"))
        out.append('<span style="%s">%s</span>' % (";".join(style), part) if style else part)
    return "".join(out)


def main():
    screen, target, columns, rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    text = open(screen, encoding="utf-8").read().rstrip("\n")
    page = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>terminal</title><style>"
            "body{margin:0;background:#11161c}pre{margin:0;padding:12px 14px;color:#d1d5db;"
            "font:14px/1.3 'DejaVu Sans Mono',monospace;width:%dch;min-height:%dem;white-space:pre}"
            "</style></head><body><pre>%s</pre></body></html>\n") % (columns, int(rows * 1.3), convert(text))
    open(target, "w", encoding="utf-8").write(page)


if __name__ == "__main__":
    main()
