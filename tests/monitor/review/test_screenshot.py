"""Headless Chromium (Debian's package) screenshots an HTML page; blank pages are told apart."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from monitor.review.screenshot import ScreenshotError, find_chromium, is_blank, main, screenshot
from tests.servers import require_binary


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_binary("chromium", packages="chromium")


def _svg_plot() -> str:
    """A seeded trend line against a band, as inline SVG (like the review's plots)."""
    rng = np.random.default_rng(7)
    fig = Figure(figsize=(8, 3))
    ax = fig.subplots()
    x = np.arange(200)
    ax.fill_between(x, 0.04, 0.06, color="tab:green", alpha=0.3, label="allowed")
    ax.plot(x, 0.05 + np.cumsum(rng.normal(0, 0.001, 200)), color="tab:blue", label="observed")
    ax.legend()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def test_a_page_with_an_svg_plot_is_not_blank(chromium: str, tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    html.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>review</title></head>"
        f"<body><h1>fraud-scorer v7-int8</h1><p>escalations: breach</p>{_svg_plot()}</body></html>"
    )
    png = screenshot(html, tmp_path / "shots" / "report.png", width=1000, height=700)
    with Image.open(png) as image:
        assert image.size == (1000, 700)
    assert not is_blank(png)


def test_an_empty_white_page_is_blank(chromium: str, tmp_path: Path) -> None:
    html = tmp_path / "empty.html"
    html.write_text("<!doctype html><html><body style='background:#fff'></body></html>")
    png = screenshot(html, tmp_path / "empty.png", chromium=chromium)
    assert is_blank(png)


def test_a_few_stray_pixels_are_blank(tmp_path: Path) -> None:
    """Many colours on a handful of pixels do not make a page."""
    pixels = np.full((400, 400, 3), 255, dtype=np.uint8)
    pixels[0, :40] = np.arange(40)[:, None] * 6
    Image.fromarray(pixels).save(tmp_path / "stray.png")
    assert is_blank(tmp_path / "stray.png")


def test_missing_chromium_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ScreenshotError, match="install Debian's chromium package"):
        find_chromium(str(tmp_path / "no-chromium"))
    html = tmp_path / "a.html"
    html.write_text("<p>x</p>")
    with pytest.raises(ScreenshotError, match="install Debian's chromium package"):
        screenshot(html, tmp_path / "a.png", chromium=str(tmp_path / "no-chromium"))


def test_missing_page_and_bad_size_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ScreenshotError, match="no HTML file at"):
        screenshot(tmp_path / "nothing.html", tmp_path / "a.png")
    with pytest.raises(ValueError, match="width"):
        screenshot(tmp_path / "nothing.html", tmp_path / "a.png", width=0)


def test_the_command_line_writes_the_picture_or_says_why_not(
    chromium: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m monitor.review.screenshot` as the README uses it: exit 0 and the file;
    exit 2 and one line for a page that is not there."""
    html = tmp_path / "report.html"
    html.write_text(f"<!doctype html><html><body><h1>review</h1>{_svg_plot()}</body></html>")
    assert main([str(html), str(tmp_path / "r.png"), "--width", "800", "--height", "600"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'r.png'}"
    with Image.open(tmp_path / "r.png") as image:
        assert image.size == (800, 600)
    assert main([str(tmp_path / "none.html"), str(tmp_path / "n.png")]) == 2
    assert (
        capsys.readouterr().err.strip() == f"screenshot: no HTML file at {tmp_path / 'none.html'}"
    )
