"""Self-contained HTML reports: images inlined as data URIs, styles inline, nothing fetched from a network."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
header { background: #f3f5f8; border-radius: 6px; padding: 0.8rem 1.2rem; margin-bottom: 1.5rem; }
header dt { font-weight: 600; float: left; clear: left; width: 11rem; }
header dd { margin-left: 11rem; font-family: monospace; font-size: 0.9em; white-space: pre-wrap; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccd; padding: 0.3rem 0.7rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; }
pre { background: #f7f7f7; padding: 0.8rem; overflow-x: auto; }
"""


def image_tag(path: Path, alt: str) -> str:
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}">'


def table(rows: list[list], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def lineage_list(record: dict) -> str:
    """A lineage record as a definition list; params one line per section."""
    items = []
    for key, value in record.items():
        if isinstance(value, dict):
            shown = "\n".join(f"{name}: {json.dumps(part, sort_keys=True)}" for name, part in value.items())
        else:
            shown = str(value)
        items.append(f"<dt>{html.escape(key)}</dt><dd>{html.escape(shown)}</dd>")
    return f"<dl>{''.join(items)}</dl>"


def lineage_header(record: dict) -> str:
    return f"<header>{lineage_list(record)}</header>"


def page(title: str, lineage: dict, sections: list[tuple[str, str]]) -> str:
    """A whole HTML document: a lineage header, then (heading, html body) sections."""
    body = "".join(f"<section><h2>{html.escape(heading)}</h2>{content}</section>" for heading, content in sections)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{lineage_header(lineage)}{body}</body></html>\n"
    )
