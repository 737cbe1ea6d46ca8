"""The service's routes (FastAPI on uvicorn; docs/serving.md says why this library):

    POST /predict   pictures (multipart 'files', or one picture as the body) -> each one's class, top 3, unfamiliar flag
    GET  /          the upload page, for a person
    GET  /health    503 until a model pair is loaded, then 200 and the version
    GET  /metrics   Prometheus' text format

Small pictures are decoded as they arrive and larger ones on a small pool of threads, predicted in micro-batches on
the model's own thread (batching.py), and kept for the drift monitor by a writer thread (captures.py): no answer
waits for the captures to be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.requests import ClientDisconnect

from pipeline.serving.batching import Answer, MicroBatcher
from pipeline.serving.captures import Capture, TrafficRecorder, now
from pipeline.serving.metrics import ServiceMetrics
from pipeline.serving.pair import ModelPair, PairWatcher
from pipeline.serving.params import ServeParams
from pipeline.serving.uploads import Decoded, Refused, decode, header_pixels, uploads_of

LOG = logging.getLogger("fashion-serve")
PAGE = Path(__file__).with_name("page.html")
TOP = 3


@dataclass
class Service:
    params: ServeParams
    class_names: tuple[str, ...]
    model_path: Path
    scorer_path: Path
    metrics: ServiceMetrics = field(init=False)
    pair: ModelPair | None = None

    def __post_init__(self):
        self.metrics = ServiceMetrics(self.params.max_batch)

    def swap(self, pair: ModelPair) -> None:
        """Called by the watcher's thread: the next batch is predicted by `pair` (one reference assignment)."""
        first = self.pair is None
        if first:
            # What is loaded by now (TensorFlow, Keras, the first model: millions of objects) lives as long as the
            # service: kept out of the garbage collector's full passes, which would otherwise pause answers for tens of
            # milliseconds. Only the first pair: a later one is swapped out in turn, and a frozen one would never be
            # collected.
            gc.collect()
            gc.freeze()
        self.pair = pair
        self.metrics.in_use(pair.version)
        if not first:
            self.metrics.swaps.inc()
        LOG.info("fashion-serve: %s model %s", "serving" if first else "swapped to", pair.version)

    def answer(self, decoded: list[Decoded], answers: list[Answer]) -> dict:
        predictions = []
        for picture, answer in zip(decoded, answers, strict=True):
            ranked = np.argsort(-answer.probabilities, kind="stable")[:TOP]
            top = [[self.class_names[index], round(float(answer.probabilities[index]), 6)] for index in ranked]
            predictions.append(
                {
                    "file": picture.name,
                    "class": top[0][0],
                    "probability": top[0][1],
                    "top3": top,
                    "unfamiliar": answer.unfamiliar,
                    "unfamiliarity": round(answer.unfamiliarity, 4),
                }
            )
        self.metrics.answered([p["class"] for p in predictions], [p["unfamiliar"] for p in predictions])
        return {"model_version": answers[0].version, "predictions": predictions}


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(service: Service) -> FastAPI:
    params = service.params
    decoders = ThreadPoolExecutor(max_workers=params.decode_threads, thread_name_prefix="decode")
    watcher = PairWatcher(service.model_path, service.scorer_path, params.reload_seconds, service.swap)
    metrics = service.metrics
    recorder = None
    if params.capture:
        recorder = TrafficRecorder(
            Path(params.capture_folder),
            params.capture_per_day,
            params.capture_total,
            params.capture_chunk,
            params.capture_flush_seconds,
            on_written=metrics.captured.inc,
            on_dropped=lambda reason, count: metrics.capture_dropped.labels(reason=reason).inc(count),
        )

    def current_pair() -> ModelPair:
        return service.pair

    batcher = MicroBatcher(current_pair, params.max_batch, params.max_wait_ms / 1000, metrics.batch_size.observe)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        watcher.start()
        if recorder is not None:
            recorder.start()
        yield
        watcher.stop()
        await batcher.stop()
        if recorder is not None:
            recorder.close()  # what is buffered is written
        decoders.shutdown(wait=False, cancel_futures=True)

    # No generated API pages: FastAPI's load their scripts from a CDN (blank offline), and docs/serving.md has the API.
    app = FastAPI(title="fashion-serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    async def upload_page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text())

    @app.get("/health")
    async def health() -> JSONResponse:
        if service.pair is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        if not batcher.running():
            return JSONResponse({"status": "not predicting: the batching task ended (see the log)"}, status_code=503)
        return JSONResponse({"status": "ok", "model_version": service.pair.version})

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def decoded_pictures(request: Request) -> list[Decoded]:
        uploads = await uploads_of(request, params.max_upload_bytes, params.max_files)
        # Small pictures are decoded right here: handing a 1 ms decode to a thread costs more than it saves
        # (docs/serving.md has the figures). Larger ones, a photo's 100 ms and more, go to the decode threads, so that
        # they never hold up the other requests this loop serves. Their size is read from the header: a few bytes can
        # hold a picture of millions of pixels.
        loop = asyncio.get_running_loop()
        jobs = [
            loop.run_in_executor(decoders, decode, upload, params.invert, params.crop, params.max_pixels)
            if header_pixels(upload.data) > params.inline_decode_pixels
            else None
            for upload in uploads
        ]
        try:
            return [
                await job if job is not None else decode(upload, params.invert, params.crop, params.max_pixels)
                for upload, job in zip(uploads, jobs, strict=True)
            ]
        except Refused:
            for job in jobs:  # the request fails whole: the others' results are not wanted
                if job is not None:
                    job.cancel()
            raise

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        started = time.perf_counter()
        try:
            if service.pair is None:
                raise Refused(503, "the model is still loading; GET /health says when it is ready")
            with batcher.arrival():
                decoded = await decoded_pictures(request)
            answers = await batcher.predict(np.stack([picture.image for picture in decoded]))
            response = JSONResponse(service.answer(decoded, answers))
        except Refused as problem:
            response = error(problem.status, problem.message)
        except ClientDisconnect:  # nobody is left to answer: counted apart from the service's own failures
            response = error(499, "the client closed the connection before its upload ended")
        except Exception as failure:  # a bug or a broken model: one line for the client, the trace in the log
            LOG.exception("fashion-serve: prediction failed")
            response = error(500, f"prediction failed: {' '.join(str(failure).split())[:200]}")
        metrics.requests.labels(status=str(response.status_code)).inc()
        metrics.latency.observe(time.perf_counter() - started)
        if response.status_code == 200 and recorder is not None:
            answered_at = now()
            for picture, answer in zip(decoded, answers, strict=True):
                recorder.offer(
                    Capture(
                        picture.image,
                        picture.thumbnail,
                        picture.name,
                        answered_at,
                        answer.probabilities,
                        answer.unfamiliarity,
                        answer.unfamiliar,
                        answer.version,
                    )
                )
        return response

    return app
