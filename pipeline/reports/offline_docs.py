"""Great Expectations' Data Docs made to open offline: the scripts, styles, fonts and logo its pages fetch from
CDNs are copied beside the pages (from the npm packages in package.json) and the pages point at the copies."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from pipeline.errors import PipelineError

VENDOR_DIR = Path("static") / "vendor"

# Each CDN address the pages load, and the file of an installed npm package that replaces it.
CDN_FILES = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js/dist/umd/popper.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap/dist/js/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table/dist/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table/dist/bootstrap-table.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.js"
    ),
    # The pages ask for 1.19.0's stylesheet beside 1.19.1's script; the installed 1.19.1 serves both.
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker/dist/css/bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker/dist/js/bootstrap-datepicker.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "@fortawesome/fontawesome-free/css/all.min.css"
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "@forevolve/bootstrap-dark/dist/css/bootstrap-prefers-dark.min.css"
    ),
}
# Font Awesome's stylesheet loads its fonts from ../webfonts/.
EXTRA_DIRS = ("@fortawesome/fontawesome-free/webfonts",)
# Vega draws the charts of some expectation types; this project's suites have none, so the pages never call
# it and its scripts are left out. A page that does call it stops the stage (see `_check_offline`).
UNUSED_SCRIPTS = (
    "https://cdn.jsdelivr.net/npm/vega@5",
    "https://cdn.jsdelivr.net/npm/vega-lite@5",
    "https://cdn.jsdelivr.net/npm/vega-embed@6",
)
# GX's logo, served with a time stamp; Data Docs keep a copy of the same picture in static/images/.
LOGO = re.compile(r"https://great-expectations-web-assets\.s3\.[^\"']*/logo-long\.png[^\"']*")
# Links to the site's own static/ folder; GX gets their depth wrong for the favicon of validation result pages.
STATIC_LINK = re.compile(r'((?:href|src)=")(?:\.{1,2}/)*static/')
# Subresource-integrity checks of the CDN copies: a page opened from disk has no origin, so a cross-origin
# request for a local script is refused; the local copies were checked by `npm ci` against package-lock.json.
INTEGRITY_ATTRIBUTES = re.compile(r'\s+(?:integrity="[^"]*"|crossorigin="[^"]*")')
# Anything the browser would fetch by itself: scripts, stylesheets, pictures. Plain links (<a href>) are fine.
REMOTE_RESOURCE = re.compile(
    r"<(?:script|img)\b[^>]*\bsrc=\"(https?://[^\"]+)\"|<link\b[^>]*\bhref=\"(https?://[^\"]+)\""
)


def make_offline(docs_dir: Path, packages_dir: Path) -> None:
    """Copy the vendored files into `docs_dir` and rewrite every page to use them; fail naming any page left online."""
    _copy_vendored(docs_dir / VENDOR_DIR, packages_dir)
    for page in docs_dir.rglob("*.html"):
        to_root = Path(os.path.relpath(docs_dir, page.parent))
        text = page.read_text()
        for url, package_file in CDN_FILES.items():
            text = text.replace(f'"{url}"', f'"{(to_root / VENDOR_DIR / package_file).as_posix()}"')
        for url in UNUSED_SCRIPTS:
            text = text.replace(f'<script src="{url}"></script>', "")
        text = INTEGRITY_ATTRIBUTES.sub("", text)
        text = LOGO.sub((to_root / "static" / "images" / "logo-long.png").as_posix(), text)
        text = STATIC_LINK.sub(rf"\g<1>{to_root.as_posix()}/static/", text)
        _check_offline(page, text)
        page.write_text(text)


def _copy_vendored(vendor_dir: Path, packages_dir: Path) -> None:
    for relative in (*CDN_FILES.values(), *EXTRA_DIRS):
        source = packages_dir / relative
        if not source.exists():
            raise PipelineError(f"{source}: missing; install the Data Docs' web assets first (npm ci)")
        target = vendor_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)


def _check_offline(page: Path, text: str) -> None:
    remote = [first or second for first, second in REMOTE_RESOURCE.findall(text)]
    if remote:
        raise PipelineError(f"{page}: loads {remote[0]} from the network (add it to pipeline/reports/offline_docs.py)")
    if "vegaEmbed(" in text:
        raise PipelineError(
            f"{page}: draws a Vega chart, whose scripts are not vendored (pipeline/reports/offline_docs.py)"
        )
