"""How fast fashion-serve answers: single-picture requests at several concurrencies over loopback, against the same
pictures decoded and predicted in-process.

Starts the real service (`fashion-serve`, params.yaml's serve section, traffic kept in a scratch folder as by
default) on the repository's model, and sends each of the first 2,000 test images as a PNG in its own request
(multipart `files`), from closed-loop clients on this same machine (aiohttp, which DVC's HTTP support installs): at
each concurrency, a warm-up, then --requests timed requests. Prints p50 and p99 latency and requests per second, the
mean batch the service formed (its /metrics), and in the same run the in-process figure: the same PNGs decoded and
cropped as the service does and predicted with the unfamiliarity score at batch 32, pictures per second, beside the
bare model call on the decoded arrays. Run `dvc repro` first (it needs models/model.keras and data/prepared/).

    python bench/serve_load.py [--requests N] [--concurrency 1 8 32]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from workspace import REPO_ROOT

from pipeline.data.preprocessing import load_arrays
from pipeline.params import load_params
from pipeline.serving.pair import load_pair
from pipeline.serving.params import ServeParams
from pipeline.serving.uploads import Upload, decode
from pipeline.tuning.workers import free_port  # a free loopback port

PICTURES = 2000
WARM_UP = 200
IN_PROCESS_BATCH = 32
BOUNDARY = "serve-load-boundary"


def png_pictures() -> list[bytes]:
    images, _ = load_arrays(REPO_ROOT / "data" / "prepared" / "test.npz")
    encoded = []
    for image in images[:PICTURES]:
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0]).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return encoded


def multipart_body(index: int, picture: bytes) -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="test-{index}.png"\r\n'
    return (head + "Content-Type: image/png\r\n\r\n").encode() + picture + f"\r\n--{BOUNDARY}--\r\n".encode()


def start_service(port: int, traffic: Path, log: Path) -> subprocess.Popen:
    import urllib.request

    command = [sys.executable, "-m", "pipeline.commands.serve", "--port", str(port), "--capture-folder", str(traffic)]
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    sys.exit(f"serve_load: the service did not start:\n{log.read_text()}")


def batch_counts(metrics: str) -> tuple[float, float]:
    """(model calls, pictures predicted) so far, from the service's /metrics."""
    values = {}
    for line in metrics.splitlines():
        if line.startswith(("fashion_batch_size_count ", "fashion_batch_size_sum ")):
            name, value = line.split()
            values[name] = float(value)
    return values.get("fashion_batch_size_count", 0.0), values.get("fashion_batch_size_sum", 0.0)


async def level(url: str, bodies: list[bytes], concurrency: int, requests: int, offset: int) -> dict:
    import aiohttp

    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def client(indices, latencies, failures):
            for index in indices:
                started = time.perf_counter()
                async with session.post(f"{url}/predict", data=bodies[index % len(bodies)], headers=headers) as answer:
                    await answer.read()
                    failures += answer.status != 200
                latencies.append(time.perf_counter() - started)
            return failures

        async def run(count: int, start: int) -> tuple[list[float], int, float]:
            indices = iter(range(start, start + count))
            latencies: list[float] = []
            began = time.perf_counter()
            failed = await asyncio.gather(*(client(indices, latencies, 0) for _ in range(concurrency)))
            return latencies, sum(failed), time.perf_counter() - began

        await run(WARM_UP, offset)
        async with session.get(f"{url}/metrics") as answer:
            calls_before, pictures_before = batch_counts(await answer.text())
        latencies, failures, seconds = await run(requests, offset + WARM_UP)
        async with session.get(f"{url}/metrics") as answer:
            calls_after, pictures_after = batch_counts(await answer.text())
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "concurrency": concurrency,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * cuts[98],
        "requests_per_s": requests / seconds,
        "mean_batch": (pictures_after - pictures_before) / max(calls_after - calls_before, 1),
        "failures": failures,
    }


def in_process(pictures: list[bytes], params: ServeParams) -> tuple[float, float]:
    """Pictures per second decoded and predicted (with the unfamiliarity score) at batch 32 in this process, and the
    bare model call on the decoded arrays."""
    pair = load_pair(REPO_ROOT / "models" / "model.keras", REPO_ROOT / "models" / "unfamiliarity.npz")
    uploads = [Upload(f"test-{index}.png", picture) for index, picture in enumerate(pictures)]
    started = time.perf_counter()
    images = []
    for start in range(0, len(uploads), IN_PROCESS_BATCH):
        batch = [
            decode(upload, params.invert, params.crop, params.max_pixels).image
            for upload in uploads[start : start + IN_PROCESS_BATCH]
        ]
        pair.predict(np.stack(batch))
        images.extend(batch)
    served_way = len(uploads) / (time.perf_counter() - started)
    arrays = np.stack(images)
    started = time.perf_counter()
    for start in range(0, len(arrays), IN_PROCESS_BATCH):
        pair.model.predict_on_batch(arrays[start : start + IN_PROCESS_BATCH])
    return served_way, len(arrays) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600, help="timed requests per concurrency (default: 600)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    arguments = parser.parse_args()
    params = load_params(ServeParams, REPO_ROOT / "params.yaml")
    pictures = png_pictures()
    bodies = [multipart_body(index, picture) for index, picture in enumerate(pictures)]
    with tempfile.TemporaryDirectory(prefix="serve-load-") as scratch:
        port = free_port()
        service = start_service(port, Path(scratch) / "traffic", Path(scratch) / "service.log")
        try:
            results, offset = [], 0
            for concurrency in arguments.concurrency:
                results.append(
                    asyncio.run(level(f"http://127.0.0.1:{port}", bodies, concurrency, arguments.requests, offset))
                )
                offset += WARM_UP + arguments.requests
        finally:
            service.terminate()
            service.wait(30)
    served_way, bare = in_process(pictures, params)
    print(
        f"fashion-serve, {arguments.requests} single-picture requests per level, max_batch {params.max_batch}, "
        f"max_wait_ms {params.max_wait_ms}, traffic kept:"
    )
    print("| concurrency | p50 ms | p99 ms | p99/p50 | requests/s | mean batch | failed |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in results:
        print(
            f"| {row['concurrency']} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
            f"{row['p99_ms'] / row['p50_ms']:.2f} | {row['requests_per_s']:.0f} | {row['mean_batch']:.1f} | "
            f"{row['failures']} |"
        )
    first, last = results[0], results[-1]
    print(
        f"throughput at concurrency {last['concurrency']} / at {first['concurrency']}: "
        f"{last['requests_per_s'] / first['requests_per_s']:.1f}x"
    )
    print(
        f"in-process, decode + predict with the unfamiliarity score at batch {IN_PROCESS_BATCH}: {served_way:,.0f} "
        f"pictures/s (the bare model call alone: {bare:,.0f} pictures/s); the service at concurrency "
        f"{last['concurrency']} reaches {last['requests_per_s'] / served_way:.2f}x the in-process rate"
    )


if __name__ == "__main__":
    main()
