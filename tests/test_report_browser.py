"""The report as a reader sees it: rendered by a real headless Chromium (Debian's package).

CI installs Chromium (.ci/run); elsewhere these tests skip when it is missing.
"""

import os
import struct

import pytest

from archsearch.report import write_report
from helpers.chromium import find_chromium, inspect_page

pytestmark = pytest.mark.skipif(
    find_chromium() is None and not os.environ.get("CI"),
    reason="no Chromium: apt-get install chromium",
)

WIDTH, HEIGHT = 1280, 900


@pytest.fixture(scope="module")
def rendered(tiny_sweep, tmp_path_factory):
    out = tmp_path_factory.mktemp("browser")
    page = write_report(tiny_sweep, out)
    return page, inspect_page(page, screenshot=out / "shot.png", width=WIDTH, height=HEIGHT)


def test_report_renders_without_console_errors_or_requests(rendered):
    _, check = rendered
    assert check.title == "archsearch report: tiny"
    assert check.console == []
    assert check.requests == []  # nothing fetched: the page is one self-contained file
    assert check.scroll_width <= WIDTH  # no horizontal scroll bar


def test_every_plot_is_visible_after_scrolling_to_it(rendered):
    page, check = rendered
    assert len(check.plots) == page.read_text().count('<figure class="plot"') >= 6
    for plot in check.plots:
        assert plot.tag == "svg", plot
        assert plot.width > 200 and plot.height > 150, plot
        assert plot.in_viewport and plot.shown, plot
        assert plot.marks > 20, plot  # axes, ticks and data were drawn


def test_screenshot_is_a_png_of_the_viewport(rendered):
    _, check = rendered
    data = check.screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (WIDTH, HEIGHT)


def test_checker_catches_errors_requests_and_hidden_plots(tmp_path):
    """The checks above would be empty promises if the checker missed these."""
    page = tmp_path / "bad.html"
    svg = '<svg width="300" height="200"><rect width="300" height="200"/></svg>'
    page.write_text(
        "<!DOCTYPE html><html><head><title>bad</title></head><body>"
        f'<figure class="plot" id="plot-ok">{svg}</figure>'
        f'<figure class="plot" id="plot-hidden" style="display:none">{svg}</figure>'
        f'<figure class="plot" id="plot-covered">{svg}</figure>'
        '<div style="position:fixed;inset:0;background:white"></div>'
        '<img src="http://127.0.0.1:9/missing.png">'
        "<script>console.error('deliberate'); throw new Error('thrown');</script>"
        "</body></html>")
    check = inspect_page(page, width=800, height=600, timeout=30)
    joined = " | ".join(check.console)
    assert "deliberate" in joined and "thrown" in joined
    assert check.requests == ["http://127.0.0.1:9/missing.png"]
    plots = {p.id: p for p in check.plots}
    assert not plots["plot-hidden"].shown and plots["plot-hidden"].width == 0
    assert not plots["plot-covered"].shown  # the fixed overlay is on top of it
