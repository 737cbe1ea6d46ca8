"""The drift monitor on what the prediction service saw: fashion-serve running on a small workspace's model, pictures
sent to it over HTTP, and the drift-monitor flow checking the traffic since its last check."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from flows.monitoring import drift_monitor
from pipeline.data.datasets import dataset_spec
from pipeline.data.pool import read_pool
from pipeline.data.preprocessing import load_arrays
from pipeline.model.version import version_of_files
from pipeline.params import read_section
from pipeline.serving.captures import captured_chunks, chunk_count
from tests.support.data import set_keys
from tests.support.service import running_service, wait_until
from tests.support.traffic import labelled_record, write_traffic

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(copy_of_small_workspace) -> Path:
    return copy_of_small_workspace("served-traffic")


def send(url: str, images, prefix: str) -> None:
    for start in range(0, len(images), 10):
        files = []
        for index, image in enumerate(images[start : start + 10], start):
            picture = io.BytesIO()
            Image.fromarray(image[..., 0]).save(picture, format="PNG")
            files.append(("files", (f"{prefix}-{index:03d}.png", picture.getvalue(), "image/png")))
        response = httpx.post(f"{url}/predict", files=files, timeout=30)
        assert response.status_code == 200, response.text


def test_labelled_traffic_well_below_the_test_accuracy_is_worse_live(copy_of_small_workspace):
    """A record of labels whose random sample is 30 points below the model's test accuracy: the monitor calls the
    model worse live even with no new traffic, and, with no new data to learn from, asks for labels."""
    root = copy_of_small_workspace("worse-live")
    answers = pd.read_csv(root / "reports" / "evaluate" / "predictions.csv")
    in_use = version_of_files(root / "models" / "model.keras", root / "models" / "unfamiliarity.npz")
    record = labelled_record(answers, in_use, datetime(2026, 12, 1, tzinfo=UTC), days=3, per_day=50, mislabelled=0.3)
    record.to_csv(root / "data" / "live" / "labels.csv", index=False)
    summary = drift_monitor(workspace=str(root), traffic=str(root / "no-traffic"))
    assert summary["verdict"] == "no traffic"
    assert summary["live"]["verdict"] == "worse live" and summary["live"]["labels"] == 150
    assert "label the live sheets" in summary["live"]["decision"]
    assert summary.get("retraining_flow_run_id") is None
    index = (root / "reports" / "index.html").read_text()
    assert "worse live: live accuracy" in index


def captured(traffic: Path) -> int:
    return sum(chunk_count(chunk) for chunk in captured_chunks(traffic))


def test_the_monitor_checks_the_traffic_since_its_last_check(workspace, tmp_path):
    traffic = workspace / "data" / "traffic"
    # The service's settings from a copy of the workspace's params (the workspace's own stay committed), its
    # chunks closed within half a second.
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    set_keys(params, {"serve.capture_flush_seconds": 0.5})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    images, _ = load_arrays(workspace / "data" / "prepared" / "test.npz")
    arguments = ["--params", tmp_path / "params.yaml", "--model", workspace / "models" / "model.keras"]
    with running_service(arguments, tmp_path / "service.log", cwd=workspace) as service:
        send(service.url, images[:30], "day1")
        wait_until(lambda: captured(traffic) == 30, 20, "30 captured pictures")
        first = drift_monitor(workspace=str(workspace))
        assert first["batch"]["images"] == 30 and str(traffic) in first["batch"]["source"]
        assert first["verdict"] in ("no drift", "drift")  # clean pictures: "drift" at rate alpha
        # Today's traffic goes to labelling once its day has closed: a day's random sample is drawn from all of it.
        assert first["live_sheet"] is None and first["live"]["verdict"] == "inconclusive"
        # Nothing new since: said in one line, and a success.
        assert drift_monitor(workspace=str(workspace))["verdict"] == "no traffic"

        # Drifted traffic on two days in a row confirms drift; with no labelled data to retrain on, the labelling
        # sheet offers the captured pictures, with the service's thumbnail and the uploaded name of each.
        summaries = []
        for day in (2, 3):
            send(service.url, images[30 * day : 30 * day + 30], f"day{day}")
            wait_until(lambda day=day: captured(traffic) == 30 * day, 20, f"day {day}'s pictures")
            summaries.append(drift_monitor(scenario="inversion", workspace=str(workspace)))
    assert [summary["batch"]["images"] for summary in summaries] == [30, 30]
    assert all(summary["dataset_drift"] for summary in summaries)
    sheet_path = Path(summaries[-1]["labelling_sheet"])
    sheet = pd.read_csv(sheet_path, keep_default_na=False)
    assert len(sheet) == 30 and list(sheet["confidence"]) == sorted(sheet["confidence"])
    assert set(sheet["uploaded_as"]) == {f"day3-{index:03d}.png" for index in range(30)}
    for thumbnail in sheet["thumbnail"]:
        with Image.open(sheet_path.parent / thumbnail) as picture:
            assert picture.size == (28, 28)  # the uploads were 28x28: their thumbnails are not enlarged


def test_a_closed_days_traffic_is_labelled_counted_live_and_joins_the_pool(copy_of_small_workspace):
    """The monitor's live sheet of a past day's traffic, labelled with each picture's true class and recorded with
    `fashion-live label --accept`: the labels counted by the next run's verdict, the pictures accepted as source
    `live` through the gate."""
    root = copy_of_small_workspace("live-labels")
    images, labels = load_arrays(root / "data" / "prepared" / "train.npz")
    images, labels = images[:400], labels[:400]  # not test images: the gate refuses those
    probabilities = np.random.default_rng(0).dirichlet(np.ones(10), len(images)).astype(np.float32)
    version = version_of_files(root / "models" / "model.keras", root / "models" / "unfamiliarity.npz")
    write_traffic(root / "data" / "traffic", images, probabilities, datetime(2026, 12, 3, 9, tzinfo=UTC), version)
    first = drift_monitor(workspace=str(root), retrain_on_drift=False)
    sheet = Path(first["live_sheet"])
    table = pd.read_csv(sheet / "labels.csv", dtype=str, keep_default_na=False)
    class_names = dataset_spec(read_section("ingest", root / "params.yaml")["dataset"]).class_names
    table["label"] = [class_names[labels[int(name[7:12])]] for name in table["uploaded_as"]]
    table.to_csv(sheet / "labels.csv", index=False)
    command = [sys.executable, "-m", "pipeline.commands.live", "label", str(sheet), "--accept"]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(table)} new label(s) recorded" in result.stdout and "live: worse live: " in result.stdout
    [batch] = read_pool(root / "data" / "pool")
    assert batch.name.startswith(sheet.name) and batch.source == "live" and len(batch.labels) == len(table)
    # The next run counts the random sample's labels (the answers were random: far below the test accuracy).
    quiet = drift_monitor(workspace=str(root), retrain_on_drift=False)
    random_sample = int((pd.read_csv(sheet / "answers.csv")["group"] == "random").sum())
    assert quiet["verdict"] == "no traffic" and quiet["live"]["labels"] == random_sample
    assert quiet["live"]["verdict"] == "worse live" and "retraining is off" in quiet["live"]["decision"]
