"""Regenerate web/static/favicon.ico from web/static/favicon.svg (16 and 32 px PNGs in
one ICO), drawn by Chromium: .venv/bin/python docs/favicon.py"""

from __future__ import annotations

import struct
from pathlib import Path

from playwright.sync_api import sync_playwright

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def pngs(svg: str, sizes: tuple[int, ...]) -> list[bytes]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        out = []
        for size in sizes:
            page = browser.new_page(viewport={"width": size, "height": size})
            page.set_content(
                f"<style>html,body{{margin:0;background:transparent}}svg{{width:{size}px;"
                f"height:{size}px;display:block}}</style>{svg}"
            )
            out.append(page.screenshot(omit_background=True))
            page.close()
        browser.close()
    return out


def ico(images: list[tuple[int, bytes]]) -> bytes:
    header = struct.pack("<HHH", 0, 1, len(images))
    offset = 6 + 16 * len(images)
    entries, data = b"", b""
    for size, png in images:
        entries += struct.pack("<BBBBHHII", size, size, 0, 0, 1, 32, len(png), offset + len(data))
        data += png
    return header + entries + data


def main() -> None:
    sizes = (16, 32)
    svg = (STATIC / "favicon.svg").read_text("utf-8")
    (STATIC / "favicon.ico").write_bytes(ico(list(zip(sizes, pngs(svg, sizes), strict=True))))


if __name__ == "__main__":
    main()
