"""A screenshot of an HTML report by headless Chromium, and a check that it shows something.

:func:`screenshot` runs Debian's ``chromium`` (``/usr/bin/chromium``) once in
headless mode with a fresh, throw-away profile and no network services of its
own (no sync, component updates or background fetches), so it reads only the
local file it is given. :func:`is_blank` tells a page that rendered from one
that did not (a white or single-colour image).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

__all__ = ["ScreenshotError", "find_chromium", "is_blank", "screenshot"]

#: Where Debian's chromium package installs its launcher.
DEBIAN_CHROMIUM = "/usr/bin/chromium"
#: Seconds Chromium gets to load the page and write the image.
TIMEOUT_SECONDS = 60.0
#: Flags of every run: headless, no sandbox (containers run as root), nothing fetched
#: from the network by Chromium itself, no scroll bars in the picture.
CHROMIUM_FLAGS = (
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


class ScreenshotError(Exception):
    """Chromium is missing, failed, or wrote no image."""


def find_chromium(chromium: str | None = None) -> str:
    """The Chromium to run: ``chromium`` if given, else ``chromium`` on PATH, else Debian's.

    Raises
    ------
    ScreenshotError
        If none is an executable file.
    """
    candidates = [chromium] if chromium else [shutil.which("chromium"), DEBIAN_CHROMIUM]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    named = chromium or f"chromium (on PATH or {DEBIAN_CHROMIUM})"
    raise ScreenshotError(
        f"{named} not found: install Debian's chromium package (apt-get install chromium)"
    )


def screenshot(
    html: Path,
    png: Path,
    *,
    width: int = 1280,
    height: int = 1600,
    chromium: str | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> Path:
    """Render ``html`` in a ``width`` x ``height`` window and write it to ``png``; returns ``png``.

    Only the window is captured (the top ``height`` pixels of a longer page).

    Raises
    ------
    ScreenshotError
        If Chromium is missing, fails, times out or writes no image; ``ValueError``
        for a size that is not a positive number of pixels.
    """
    for name, value in (("width", width), ("height", height)):
        if not (isinstance(value, int) and 0 < value <= 16384):
            raise ValueError(f"{name} must be a whole number of pixels in 1..16384, got {value!r}")
    page = Path(html).resolve()
    if not page.is_file():
        raise ScreenshotError(f"no HTML file at {page}")
    binary = find_chromium(chromium)
    out = Path(png).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="shiftwatch-chromium-") as profile:
        cmd = [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={out}",
            f"--window-size={width},{height}",
            page.as_uri(),
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as err:
            raise ScreenshotError(f"{binary} took more than {timeout:g} s on {page}") from err
    if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise ScreenshotError(
            f"{binary} wrote no screenshot of {page} (exit {done.returncode}): " + " | ".join(tail)
        )
    return out


def is_blank(png: Path, *, min_colours: int = 16, min_share: float = 0.01) -> bool:
    """Whether the image shows (next to) nothing.

    The background is the most common colour. An image is blank unless it has at
    least ``min_colours`` distinct colours and at least a ``min_share`` of its pixels
    differ from the background: an empty page, a page of one solid colour, a few
    stray pixels or a lone line of text (about 0.1% of a 1000 x 700 window) are
    blank; a heading with one matplotlib plot (hundreds of colours, about 9% of
    the pixels) is not.
    """
    if not (min_colours >= 1 and math.isfinite(min_share) and 0 <= min_share < 1):
        raise ValueError("min_colours must be at least 1 and min_share in [0, 1)")
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        total = rgb.width * rgb.height
        colours = rgb.getcolors(maxcolors=total)
    if not colours:
        return True
    background = max(count for count, _ in colours)
    return len(colours) < min_colours or (total - background) / total < min_share


def main(argv: list[str] | None = None) -> int:
    """``python -m monitor.review.screenshot REPORT.html OUT.png [--width W] [--height H]``."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m monitor.review.screenshot",
        description="Take a screenshot of an HTML report with headless Chromium.",
    )
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--height", type=int, default=1700)
    args = parser.parse_args(argv)
    try:
        out = screenshot(args.html, args.png, width=args.width, height=args.height)
    except (ScreenshotError, ValueError) as err:
        print(f"screenshot: {err}", file=sys.stderr)
        return 2
    blank = " (blank: did the page render?)" if is_blank(out) else ""
    print(f"wrote {out}{blank}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
