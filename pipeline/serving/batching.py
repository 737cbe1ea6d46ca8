"""Requests that arrive together are predicted together.

Each request's images join one queue, together. The batching loop takes the first waiting request, then more while
the batch stays within `max_batch` images, and predicts the batch in one call on the model's own thread. It waits for
more, up to `max_wait` seconds, only while other requests are arriving (accepted, their pictures still being read):
a lone request is predicted at once, while under load batches fill up, and while the model works new requests queue
for the next batch, so throughput grows with concurrency. Each batch is predicted by one pair, the one in use when
the batch starts: a swap takes effect between batches, and a request's answers all come from one pair.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from pipeline.serving.pair import ModelPair


@dataclass(frozen=True)
class Answer:
    probabilities: np.ndarray  # (classes,)
    unfamiliarity: float
    unfamiliar: bool
    version: str


class MicroBatcher:
    def __init__(
        self,
        current_pair: Callable[[], ModelPair],
        max_batch: int,
        max_wait: float,
        on_batch: Callable[[int], None] = lambda size: None,
    ):
        self.current_pair, self.max_batch, self.max_wait, self.on_batch = current_pair, max_batch, max_wait, on_batch
        self.queue: asyncio.Queue = asyncio.Queue()
        # One thread runs the model: TensorFlow uses every core for one call, and batches are what make it efficient.
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.task: asyncio.Task | None = None
        self.held: tuple[np.ndarray, asyncio.Future] | None = None
        self.arriving = 0  # requests accepted whose pictures are still being read: they join a batch soon

    @contextlib.contextmanager
    def arrival(self) -> Iterator[None]:
        """Around reading a request's pictures: while it lasts, a batch being formed may wait for them."""
        self.arriving += 1
        try:
            yield
        finally:
            self.arriving -= 1

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.model_thread.shutdown(wait=False, cancel_futures=True)

    async def predict(self, images: np.ndarray) -> list[Answer]:
        """Each image's answer (images: uint8 (N, 28, 28, 1)), from one batch and so from one pair."""
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((images, future))
        return await future

    async def next_batch(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        first, self.held = (self.held, None) if self.held is not None else (await self.queue.get(), None)
        batch = [first]
        size = len(batch[0][0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while size < self.max_batch:
            remaining = deadline - loop.time()
            try:
                waiting = self.queue.get_nowait() if not self.queue.empty() else None
                if waiting is None and remaining > 0 and self.arriving:
                    waiting = await asyncio.wait_for(self.queue.get(), remaining)
            except TimeoutError:
                waiting = None
            if waiting is None:
                break
            if size + len(waiting[0]) > self.max_batch:
                self.held = waiting  # too many for this batch: the next one's first, keeping arrival order
                break
            batch.append(waiting)
            size += len(waiting[0])
        return batch

    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def run(self) -> None:
        while True:
            batch = [(images, future) for images, future in await self.next_batch() if not future.done()]
            if not batch:  # every client of the batch has left
                continue
            try:
                await self.predict_batch(batch)
            except Exception as error:  # the batch's requests fail with it; the loop serves the next batch
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)

    async def predict_batch(self, batch: list[tuple[np.ndarray, asyncio.Future]]) -> None:
        pair = self.current_pair()
        images = np.concatenate([images for images, _ in batch])
        self.on_batch(len(images))
        outputs = await asyncio.get_running_loop().run_in_executor(self.model_thread, pair.predict, images)
        start = 0
        for request_images, future in batch:
            end = start + len(request_images)
            if not future.done():
                future.set_result(
                    [
                        Answer(
                            outputs.probabilities[i],
                            float(outputs.unfamiliarity[i]),
                            bool(outputs.unfamiliar[i]),
                            pair.version,
                        )
                        for i in range(start, end)
                    ]
                )
            start = end
