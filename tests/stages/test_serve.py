"""fashion-serve for real: the service as a process on loopback, a real HTTP client and the real Chromium.

Its answers equal fashion-predict's on the same files; bad requests mixed with good ones from concurrent clients get
their status and one line while every good one is answered; requests arriving together share model calls; a new
model pair is swapped in under load without one failed request; and what it saw is kept for the drift monitor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline.model.unfamiliarity import file_md5
from pipeline.model.unfamiliarity import load as load_scorer
from pipeline.model.unfamiliarity import save as save_scorer
from pipeline.serving.captures import captured_chunks
from tests.support.browser import launch, screenshot
from tests.support.commands import predict
from tests.support.data import set_keys, square_images
from tests.support.service import running_service, wait_until
from tests.support.training import train_square_model
from tests.support.workspaces import REPO_ROOT

# Limits small enough to pass cheaply in a test (the defaults are in params.yaml), and pictures read whole: the square
# task's class is where the square sits, which cropping to the item would lose.
TEST_SERVE = {
    "serve.crop": False,
    "serve.max_upload_bytes": 300_000,
    "serve.max_pixels": 1_000_000,
    "serve.reload_seconds": 0.3,
    "serve.capture_flush_seconds": 0.5,
}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Two models of the square task with their scorers: the one in use, and the one a promotion brings."""
    root = tmp_path_factory.mktemp("serve-models")
    (root / "first").mkdir()
    (root / "second").mkdir()
    first = train_square_model(root / "first")
    second = train_square_model(root / "second", epochs=2, seed=7)
    return {"first": first, "second": second}


@pytest.fixture(scope="module")
def serve_params(tmp_path_factory) -> Path:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    set_keys(params, TEST_SERVE)
    path = tmp_path_factory.mktemp("serve-params") / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    """Pictures of the square task as a person would send them: PNGs at 28 pixels, a larger JPEG on a light
    background (inverted and shrunk by the conversion), and a greyscale WebP."""
    folder = tmp_path_factory.mktemp("serve-pictures")
    images, _ = square_images(20, seed=11)
    for index, image in enumerate(images[:12]):
        Image.fromarray(image[..., 0]).save(folder / f"item{index:02d}.png")
    large = Image.fromarray(255 - images[12, ..., 0]).resize((140, 140), Image.Resampling.NEAREST)
    large.save(folder / "large.jpg", quality=95)
    Image.fromarray(images[13, ..., 0]).save(folder / "item.webp", lossless=True)
    return folder


@pytest.fixture(scope="module")
def service(models, serve_params, tmp_path_factory):
    root = tmp_path_factory.mktemp("service")
    traffic = root / "traffic"
    arguments = ["--params", serve_params, "--model", models["first"], "--capture-folder", traffic]
    with running_service(arguments, root / "service.log") as running:
        running.traffic = traffic
        yield running


def multipart(paths: list[Path]) -> list:
    return [("files", (path.name, path.read_bytes(), "application/octet-stream")) for path in paths]


def test_answers_equal_fashion_predicts_on_the_same_files(service, models, pictures, tmp_path):
    paths = sorted(pictures.iterdir())
    response = httpx.post(f"{service.url}/predict", files=multipart(paths), timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_version"] == service.health().json()["model_version"]
    assert answer["model_version"].startswith("model-") and "+scorer-" in answer["model_version"]
    predict(*paths, "--model", models["first"], "--top-k", 3, "--no-crop", "--output", tmp_path / "predicted.json")
    expected = json.loads((tmp_path / "predicted.json").read_text())
    assert [prediction["file"] for prediction in answer["predictions"]] == [row["image"] for row in expected]
    for prediction, row in zip(answer["predictions"], expected, strict=True):
        assert prediction["class"] == row["class"]
        assert prediction["probability"] == pytest.approx(row["probability"], abs=1e-5)
        assert [name for name, _ in prediction["top3"]] == [row["class"], row["class_2"], row["class_3"]]
        assert prediction["unfamiliar"] == row["unfamiliar"]
    assert len({prediction["class"] for prediction in answer["predictions"]}) >= 5  # the model's own answers
    # One picture as the raw body gets the same answer as in the form.
    raw = httpx.post(f"{service.url}/predict", content=paths[0].read_bytes(), headers={"content-type": "image/png"})
    assert raw.status_code == 200 and raw.json()["predictions"][0]["class"] == expected[0]["class"]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height and whose pixel data is one compressed empty row: a
    decompression bomb's shape without its size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def bad_requests(good_png: bytes) -> dict[str, tuple[dict, int, str]]:
    """Each bad request (httpx.post keyword arguments), the status it must get and what its error must say."""
    array = io.BytesIO()
    np.save(array, np.zeros((2, 28, 28), np.uint8))
    form = {"content-type": "multipart/form-data; boundary=xyz"}
    return {
        "not a picture": (
            {"files": [("files", ("notes.png", b"plain text", "image/png"))]},
            422,
            "notes.png: unreadable",
        ),
        "truncated": ({"files": [("files", ("cut.png", good_png[: len(good_png) // 2], "image/png"))]}, 422, "cut.png"),
        "empty body": ({"content": b"", "headers": {"content-type": "image/png"}}, 422, "empty body"),
        "malformed multipart": (
            {"content": b"--xyz\r\nContent-Disposition: form-data\r\n\r\nx", "headers": form},
            422,
            "",
        ),
        "no files part": ({"files": [("picture", ("a.png", good_png, "image/png"))]}, 422, "no 'files'"),
        "over the pixel limit": (
            {"files": [("files", ("huge.png", png_header_only(2000, 2000), "image/png"))]},
            413,
            "huge.png: too large to read safely (4,000,000 pixels",
        ),
        "a decompression bomb": (
            {"files": [("files", ("bomb.png", png_header_only(30000, 30000), "image/png"))]},
            413,
            "bomb.png: too large to read safely",
        ),
        "over the byte limit": (
            {"content": b"\0" * 400_000, "headers": {"content-type": "image/png"}},
            413,
            "over the limit of 300,000 bytes",
        ),
        "too many files": (
            {"files": [("files", (f"copy{index}.png", good_png, "image/png")) for index in range(65)]},
            413,
            "more than serve.max_files (64) pictures in one request",
        ),
        "wrong content type": (
            {"content": b"{}", "headers": {"content-type": "application/json"}},
            415,
            "application/json",
        ),
        "an array file": (
            {"files": [("files", ("batch.npy", array.getvalue(), "application/octet-stream"))]},
            415,
            "batch.npy",
        ),
    }


def test_bad_requests_mixed_with_good_ones_from_concurrent_clients(service, pictures):
    paths = sorted(pictures.glob("item*.png"))
    expected = {
        path.name: httpx.post(f"{service.url}/predict", files=multipart([path])).json()["predictions"][0]["class"]
        for path in paths
    }
    bad = bad_requests(paths[0].read_bytes())

    async def client(number: int, async_client: httpx.AsyncClient) -> list[tuple[str, httpx.Response]]:
        results = []
        for round_ in range(len(bad)):
            path = paths[(number + round_) % len(paths)]
            results.append((path.name, await async_client.post(f"{service.url}/predict", files=multipart([path]))))
            name = list(bad)[(number + round_) % len(bad)]
            results.append((name, await async_client.post(f"{service.url}/predict", **bad[name][0])))
        return results

    async def clients():
        async with httpx.AsyncClient(timeout=30) as async_client:
            return await asyncio.gather(*(client(number, async_client) for number in range(8)))

    answered = [result for results in asyncio.run(clients()) for result in results]
    assert len(answered) == 8 * 2 * len(bad)
    for name, response in answered:
        if name in expected:
            assert response.status_code == 200, (name, response.text)
            assert response.json()["predictions"][0]["class"] == expected[name]
        else:
            status, says = bad[name][1:]
            assert response.status_code == status, (name, response.text)
            error = response.json()["error"]
            assert says in error and "\n" not in error, (name, error)
    assert serving_still(service)


def serving_still(service) -> bool:
    return service.health().status_code == 200 and service.process.poll() is None


def metric(text: str, name: str) -> float:
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    )


def test_requests_arriving_together_share_model_calls_and_metrics_count_them(service, pictures):
    before = httpx.get(f"{service.url}/metrics").text
    paths = sorted(pictures.glob("item*.png"))

    async def load():
        async with httpx.AsyncClient(timeout=30) as async_client:
            requests = [
                async_client.post(f"{service.url}/predict", files=multipart([paths[i % len(paths)]])) for i in range(64)
            ]
            return await asyncio.gather(*requests)

    assert all(response.status_code == 200 for response in asyncio.run(load()))
    after = httpx.get(f"{service.url}/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    calls = metric(after.text, "fashion_batch_size_count") - metric(before, "fashion_batch_size_count")
    pictures_predicted = metric(after.text, "fashion_batch_size_sum") - metric(before, "fashion_batch_size_sum")
    assert pictures_predicted == 64 and calls < 64  # some calls predicted several requests' pictures
    assert metric(after.text, 'fashion_requests_total{status="200"}') >= 64
    assert metric(after.text, "fashion_predictions_total") >= 64
    version = service.health().json()["model_version"]
    assert f'fashion_model_info{{version="{version}"}} 1.0' in after.text
    assert "fashion_request_seconds_bucket" in after.text and "fashion_unfamiliar_share" in after.text


def test_what_the_service_saw_is_kept_in_chunks_without_the_uploads(service, pictures):
    large = pictures / "large.jpg"
    response = httpx.post(f"{service.url}/predict", files=multipart([large]))
    assert response.status_code == 200
    wait_until(lambda: chunk_with(service.traffic, "large.jpg"), 10, "the capture of large.jpg")
    chunk, index = chunk_with(service.traffic, "large.jpg")
    with np.load(chunk, allow_pickle=False) as arrays:
        assert arrays["images"].shape[1:] == (28, 28, 1)
        assert str(arrays["versions"][index]) == response.json()["model_version"]
        offsets = arrays["thumbnail_offsets"]
        thumbnail = Image.open(io.BytesIO(arrays["thumbnails"][offsets[index] : offsets[index + 1]].tobytes()))
        assert thumbnail.size == (128, 128) and thumbnail.mode == "L"  # the 140-pixel JPEG, in grey, shrunk
        kept = b"".join(arrays[name].tobytes() for name in arrays.files)
    assert large.read_bytes()[:2000] not in kept  # the upload itself is not kept


def chunk_with(traffic: Path, file_name: str):
    for chunk in captured_chunks(traffic):  # whole chunks only, not one being written
        with np.load(chunk, allow_pickle=False) as arrays:
            names = [str(name) for name in arrays["files"]]
        if file_name in names:
            return chunk, names.index(file_name)
    return None


def test_the_upload_page_classifies_dropped_pictures_in_a_real_browser(service, pictures, tmp_path):
    from playwright.sync_api import sync_playwright

    paths = sorted(pictures.glob("item0[0-2].png"))
    expected = httpx.post(f"{service.url}/predict", files=multipart(paths)).json()
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        problems = []
        page.on("console", lambda message: message.type == "error" and problems.append(message.text))
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(service.url + "/")
        page.wait_for_function("document.getElementById('version').textContent.startsWith('model-')")
        page.set_input_files("#files", [str(path) for path in paths])
        page.wait_for_selector("#results tbody tr:nth-child(3)")
        rows = page.eval_on_selector_all(
            "#results tbody tr", "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))"
        )
        thumbnails_shown = page.eval_on_selector_all("img.thumb", "images => images.map(i => i.naturalWidth > 0)")
        screenshot(page, tmp_path, "upload-page")
        browser.close()
    assert not problems
    # Newest first; each row: picture, file, class, probability, next likely, unfamiliar.
    shown = {row[1]: (row[2], row[3], row[5]) for row in rows}
    for prediction in expected["predictions"]:
        flag = "unfamiliar" if prediction["unfamiliar"] else "no"
        assert shown[prediction["file"]] == (prediction["class"], f"{prediction['probability']:.3f}", flag)
    assert thumbnails_shown == [True, True, True]


@pytest.fixture
def model_folder(models, tmp_path) -> Path:
    """A folder holding the first model and its scorer, as models/ does in a workspace."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("model.keras", "unfamiliarity.npz"):
        shutil.copy2(models["first"].with_name(name), folder / name)
    return folder


def replace_file(source: Path, target: Path) -> None:
    """As DVC checks out an output: the new file complete, then renamed over the old one."""
    staging = target.with_name(f".{target.name}.new")
    shutil.copy2(source, staging)
    staging.replace(target)


def test_a_promoted_pair_is_swapped_in_under_load_without_one_failed_request(
    models, model_folder, serve_params, pictures, tmp_path
):
    arguments = ["--params", serve_params, "--model", model_folder / "model.keras", "--no-capture"]
    with running_service(arguments, tmp_path / "service.log") as service:
        old_version = service.health().json()["model_version"]
        paths = sorted(pictures.glob("item*.png"))
        responses: list[httpx.Response] = []
        swapped = {}
        answered_by_new = [0]

        async def client(async_client):
            index = 0
            while "at" not in swapped or answered_by_new[0] < 20:
                response = await async_client.post(
                    f"{service.url}/predict", files=multipart([paths[index % len(paths)]])
                )
                responses.append(response)
                answered_by_new[0] += response.status_code == 200 and response.json()["model_version"] != old_version
                index += 1

        async def promotion():
            await asyncio.sleep(1)
            # The model first and its scorer a moment later, as a promotion writes them: never a mismatched pair.
            replace_file(models["second"], model_folder / "model.keras")
            await asyncio.sleep(0.7)
            replace_file(models["second"].with_name("unfamiliarity.npz"), model_folder / "unfamiliarity.npz")
            swapped["at"] = len(responses)

        async def load():
            async with httpx.AsyncClient(timeout=30) as async_client:
                await asyncio.wait_for(asyncio.gather(promotion(), *(client(async_client) for _ in range(4))), 90)

        asyncio.run(load())
        assert [r.status_code for r in responses if r.status_code != 200] == []
        versions = [response.json()["model_version"] for response in responses]
        new_version = versions[-1]
        assert new_version != old_version and set(versions) == {old_version, new_version}
        # Once the new version answers, the old never does again.
        assert old_version not in versions[versions.index(new_version) :]
        assert service.health().json()["model_version"] == new_version
        metrics = httpx.get(f"{service.url}/metrics").text
        assert f'fashion_model_info{{version="{new_version}"}} 1.0' in metrics
        assert metric(metrics, "fashion_model_swaps_total") == 1
        # The mismatched moment was said once, as waiting for the new model's scorer.
        assert service.log_text().count("not swapped") <= 1

        # A pair that fails to load leaves the one in use serving, said in one log line: here a scorer naming the
        # model file beside it, which is not a model.
        (model_folder / "model.keras").write_bytes(b"not a model")
        scorer = dataclasses.replace(
            load_scorer(model_folder / "unfamiliarity.npz"), model_md5=file_md5(model_folder / "model.keras")
        )
        save_scorer(scorer, model_folder / "unfamiliarity.npz")
        wait_until(lambda: "not swapped" in service.log_text().split("swapped to")[-1], 20, "the failed load's line")
        line = [line for line in service.log_text().splitlines() if "not swapped" in line][-1]
        assert "model.keras: not a Keras model file" in line and "keeping the model in use" in line
        response = httpx.post(f"{service.url}/predict", files=multipart(paths[:1]))
        assert response.status_code == 200 and response.json()["model_version"] == new_version


def test_health_says_503_until_the_pair_is_loaded(models, model_folder, serve_params, tmp_path):
    scorer = model_folder / "unfamiliarity.npz"
    scorer.unlink()
    arguments = ["--params", serve_params, "--model", model_folder / "model.keras", "--no-capture"]
    with running_service(arguments, tmp_path / "service.log", ready=False) as service:
        wait_until(lambda: "waiting for" in service.log_text(), 60, "the service to say what it waits for")
        assert service.health().status_code == 503
        response = httpx.post(f"{service.url}/predict", content=b"x", headers={"content-type": "image/png"})
        assert response.status_code == 503 and "loading" in response.json()["error"]
        assert f"waiting for {scorer} (not found)" in service.log_text()
        shutil.copy2(models["first"].with_name("unfamiliarity.npz"), scorer)
        wait_until(lambda: service.health().status_code == 200, 60, "the pair to load")


def test_a_missing_model_and_bad_settings_are_one_line_errors(serve_params, tmp_path):
    import subprocess
    import sys

    # The installed console command, as a user types it.
    installed = Path(sys.executable).parent / "fashion-serve"
    missing = subprocess.run(
        [installed, "--params", serve_params, "--model", tmp_path / "none.keras"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert missing.returncode == 1
    expected = f"fashion-serve: error: {tmp_path / 'none.keras'}: model file not found (run `dvc repro` or "
    assert missing.stderr.strip() == expected + "`make pipeline` first)"
    params = yaml.safe_load(serve_params.read_text())
    set_keys(params, {"serve.capture_per_day": 10, "serve.capture_total": 5})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    bad = subprocess.run(
        [sys.executable, "-m", "pipeline.commands.serve", "--params", tmp_path / "params.yaml"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert "serve.capture_per_day must be at most capture_total (5), got 10" in bad.stderr
