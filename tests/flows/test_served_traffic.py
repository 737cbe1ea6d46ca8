"""The drift monitor on what the prediction service saw: fashion-serve running on a small workspace's model, pictures
sent to it over HTTP, and the drift-monitor flow checking the traffic since its last check."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from PIL import Image

from flows.monitoring import drift_monitor
from pipeline.data.preprocessing import load_arrays
from pipeline.serving.captures import captured_chunks, chunk_count
from tests.support.data import set_keys
from tests.support.service import running_service, wait_until

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
