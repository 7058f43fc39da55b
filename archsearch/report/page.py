"""The page skeleton: one HTML file, inline CSS, no script, nothing fetched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from archsearch.report.format import esc

# No external font, script or stylesheet: the page must open from a file on a machine with no
# network. The empty data: icon stops browsers asking the file system for /favicon.ico.
_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       margin: 0 auto; max-width: 1280px; padding: 1.5rem 2rem 4rem; color: #1d232b; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2.4rem; border-bottom: 2px solid #e3e7ec; }
nav a { margin-right: 1rem; }
.lead { color: #4a5563; margin-top: 0; }
.pick { background: #eef6ee; border-left: 5px solid #2e7d32; padding: .8rem 1.2rem;
        margin: 1rem 0; }
.pick .pattern { font: 600 1.4rem ui-monospace, "DejaVu Sans Mono", monospace; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e3e7ec; text-align: left;
         vertical-align: top; }
th { background: #f5f7f9; }
.err { color: #a31515; white-space: pre-wrap; max-width: 48rem; font-size: .85rem; }
.ci { color: #6b7480; font-size: .85em; }
.uninformative { color: #a35a00; font-style: italic; }
figure.plot { margin: 1rem 0 1.6rem; }
figure.plot svg { max-width: 100%; height: auto; display: block; }
figcaption { color: #4a5563; font-size: .9rem; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1.2rem; }
.facts dt { color: #4a5563; }
.facts dd { margin: 0; }
"""


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    body: str  # HTML


def plot(key: str, svg: str, caption: str) -> str:
    """A figure the browser test finds by its class: ``figure.plot`` holding one ``svg``."""
    return (f'<figure class="plot" id="plot-{esc(key)}">{svg}'
            f"<figcaption>{caption}</figcaption></figure>")


def render(title: str, lead: str, top: str, sections: Sequence[Section]) -> str:
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>{s.body}</section>'
                   for s in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
        f"<body><header><h1>{esc(title)}</h1><p class=\"lead\">{lead}</p>"
        f"<nav>{nav}</nav></header>{top}{body}</body></html>\n"
    )
