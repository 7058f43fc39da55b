"""A static HTML report of a sweep: one self-contained file, plots as inline SVG, no script.

    from archsearch.report import write_report
    path = write_report("sweeps/quickstart")   # sweeps/quickstart/report/index.html

The tests open the page in headless Chromium to check that it renders
(``tests/helpers/chromium.py``).
"""

from archsearch.report.build import write_report

__all__ = ["write_report"]
