"""The service's Prometheus metrics (GET /metrics), in a registry of its own.

Requests and errors by status, latency, batch sizes, predictions per class, the unfamiliar share (the counters for
rates over any window; the gauge over the latest answers), captures kept and dropped, and the model pair in use.
"""

from __future__ import annotations

import threading
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RECENT_ANSWERS = 1000  # the window of the unfamiliar-share gauge


class ServiceMetrics:
    def __init__(self, max_batch: int):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fashion_requests", "Prediction requests answered, by HTTP status", ["status"], registry=self.registry
        )
        self.latency = Histogram(
            "fashion_request_seconds",
            "Time to answer a prediction request",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        batch_buckets = sorted({1, 2, 4, 8, 16, 32, 64, 128, max_batch} - {b for b in (64, 128) if b > max_batch})
        self.batch_size = Histogram(
            "fashion_batch_size", "Pictures per model call", buckets=batch_buckets, registry=self.registry
        )
        self.predictions = Counter(
            "fashion_predictions", "Pictures predicted, by predicted class", ["class_name"], registry=self.registry
        )
        self.unfamiliar = Counter("fashion_unfamiliar", "Pictures flagged unfamiliar", registry=self.registry)
        self.unfamiliar_share = Gauge(
            "fashion_unfamiliar_share",
            f"Share of the latest {RECENT_ANSWERS} pictures flagged unfamiliar",
            registry=self.registry,
        )
        self.captured = Counter("fashion_captured", "Pictures kept for the drift monitor", registry=self.registry)
        self.capture_dropped = Counter(
            "fashion_capture_dropped", "Pictures not kept, by reason", ["reason"], registry=self.registry
        )
        self.model = Info("fashion_model", "The model pair answering", registry=self.registry)
        self.swaps = Counter("fashion_model_swaps", "Model pairs swapped in while serving", registry=self.registry)
        self.recent: deque[bool] = deque(maxlen=RECENT_ANSWERS)
        self.lock = threading.Lock()

    def answered(self, classes: list[str], flags: list[bool]) -> None:
        for name in classes:
            self.predictions.labels(class_name=name).inc()
        self.unfamiliar.inc(sum(flags))
        with self.lock:
            self.recent.extend(flags)
            self.unfamiliar_share.set(sum(self.recent) / len(self.recent))

    def in_use(self, version: str) -> None:
        self.model.info({"version": version})
