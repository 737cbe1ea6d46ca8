"""Data Docs made to open offline: CDN assets replaced by local copies, anything left online refused by name."""

import pytest

from pipeline.errors import PipelineError
from pipeline.reports.offline_docs import make_offline
from tests.support.workspaces import REPO_ROOT

PACKAGES = REPO_ROOT / "node_modules"
JQUERY = '<script src="https://code.jquery.com/jquery-3.7.1.min.js" integrity="sha384-x" crossorigin="anonymous">'


def test_nested_pages_point_at_local_copies(tmp_path):
    page = tmp_path / "docs" / "validations" / "a" / "b.html"
    page.parent.mkdir(parents=True)
    page.write_text(
        f'<html><head>{JQUERY}</script><link rel="icon" href="../../static/images/favicon.ico">'
        '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script></head>'
        '<body><a href="https://greatexpectations.io">GX</a></body></html>'
    )
    make_offline(tmp_path / "docs", PACKAGES)
    text = page.read_text()
    assert '<script src="../../static/vendor/jquery/dist/jquery.min.js">' in text  # no integrity/crossorigin
    assert 'href="../../static/images/favicon.ico"' in text
    assert "vega" not in text
    assert '<a href="https://greatexpectations.io">' in text  # a plain link is not loaded by the page
    copied = tmp_path / "docs" / "static" / "vendor" / "jquery" / "dist" / "jquery.min.js"
    assert copied.read_bytes() == (PACKAGES / "jquery" / "dist" / "jquery.min.js").read_bytes()
    assert (tmp_path / "docs" / "static" / "vendor" / "@fortawesome" / "fontawesome-free" / "webfonts").is_dir()


def test_a_page_still_loading_from_the_network_is_named(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.html").write_text('<img src="https://example.org/chart.png">')
    with pytest.raises(PipelineError, match=r"index\.html: loads https://example\.org/chart\.png from the network"):
        make_offline(tmp_path / "docs", PACKAGES)


def test_missing_packages_are_named(tmp_path):
    (tmp_path / "docs").mkdir()
    with pytest.raises(PipelineError, match=r"jquery\.min\.js: missing; install the Data Docs' web assets"):
        make_offline(tmp_path / "docs", tmp_path / "no_packages")
