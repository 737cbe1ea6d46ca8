"""reports/index.html: relative links to the reports that exist, their headline figures and lineage."""

import json

from pipeline.data.pool import read_pool
from pipeline.reports.index_page import render_index
from tests.support.data import write_pool_batch

LINEAGE = {"git revision": "abc1234", "data": "fashion_mnist sha256:0123", "params": {"train": {"epochs": 3}}}


def write_evaluation(reports, flow_run=None):
    (reports / "evaluate").mkdir(parents=True)
    (reports / "evaluate" / "report.html").write_text("<html></html>")
    record = {**LINEAGE, "prefect flow run": flow_run} if flow_run else LINEAGE
    (reports / "evaluate" / "lineage.json").write_text(json.dumps(record))
    (reports / "evaluate" / "metrics.json").write_text(json.dumps({"accuracy": 0.9375, "macro_f1": 0.9371}))


def test_links_what_exists_with_its_figure_and_lineage(tmp_path):
    reports = tmp_path / "reports"
    write_evaluation(reports, flow_run="5f0c-run-id")
    page = render_index(reports, reports)
    assert '<a href="evaluate/report.html">Evaluation</a>' in page
    assert "test accuracy 93.75%, macro F1 0.9371" in page
    assert "abc1234" in page and "fashion_mnist sha256:0123" in page and "5f0c-run-id" in page
    assert "train: {&quot;epochs&quot;: 3}" in page
    # The rest is named but not linked.
    assert "<h2>Data validation</h2><p>Not produced yet.</p>" in page
    assert "dvc repro tuning/dvc.yaml" in page
    assert page.count("<a href=") == 1


def test_links_are_relative_to_where_the_page_is_written(tmp_path):
    reports = tmp_path / "reports"
    write_evaluation(reports)
    page = render_index(reports, tmp_path / "published")
    assert '<a href="../reports/evaluate/report.html">Evaluation</a>' in page


def test_the_latest_drift_check_and_its_trend_are_shown(tmp_path):
    from pipeline.drift.history import append_check

    reports = tmp_path / "reports"
    checks = reports / "drift" / "checks"
    for index, verdict in enumerate(("no drift", "drift")):
        (checks / f"check-{index}").mkdir(parents=True)
        (checks / f"check-{index}" / "page.html").write_text("<html></html>")
        entry = {"id": f"check-{index}", "time": f"2026-11-2{index}T06:00:00+00:00", "source": "monitor"}
        append_check(checks, {**entry, "verdict": verdict, "images": 300, "smallest_p_value": 1e-5, "threshold": 0.004})
    page = render_index(reports, reports)
    assert '<a href="drift/checks/check-1/page.html">Latest drift check</a>' in page
    assert "drift in 300 images, smallest p-value 1e-05 (threshold 0.004)" in page and "2 checks so far" in page


def test_without_drift_checks_the_index_says_so(tmp_path):
    reports = tmp_path / "reports"
    write_evaluation(reports)
    assert "No drift check yet." in render_index(reports, reports)


def test_lists_the_accepted_batches_with_their_data_docs(tmp_path):
    reports = tmp_path / "reports"
    write_evaluation(reports)
    assert "None yet: <code>fashion-accept</code> adds them." in render_index(reports, reports, [])
    write_pool_batch(tmp_path / "pool", "week-49", "shop", 20, 1, "2026-11-30T09:00:00+00:00")
    (reports / "accept" / "week-49" / "data_docs").mkdir(parents=True)
    (reports / "accept" / "week-49" / "data_docs" / "index.html").write_text("<html></html>")
    page = render_index(reports, reports, read_pool(tmp_path / "pool"))
    expected = (
        '<a href="accept/week-49/data_docs/index.html">week-49</a>: 20 images from source shop, accepted 2026-11-30'
    )
    assert expected in page
