"""Micro-batching: requests that arrive together share one model call, within max_batch; a lone one does not wait,
one whose pictures are still being read is waited for up to max_wait; each request's answers come from one pair,
also across a swap."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from pipeline.serving.batching import MicroBatcher
from pipeline.serving.pair import Outputs


@dataclass
class CountingPair:
    """Answers each image with its first pixel as the probability of class 0; records each call's size."""

    version: str
    calls: list
    seconds: float = 0.01

    def predict(self, images):
        self.calls.append(len(images))
        time.sleep(self.seconds)  # the model's time, during which new requests queue
        values = images[:, 0, 0, 0].astype(np.float32) / 255
        probabilities = np.stack([values, 1 - values], axis=1)
        return Outputs(probabilities, np.zeros(len(images)), np.zeros(len(images), bool))


def images(*values: int) -> np.ndarray:
    return np.stack([np.full((28, 28, 1), value, np.uint8) for value in values])


def run(scenario):
    return asyncio.run(scenario())


def test_concurrent_requests_share_model_calls_and_each_gets_its_own_answers():
    pair = CountingPair("v1", [])

    async def scenario():
        batcher = MicroBatcher(lambda: pair, max_batch=8, max_wait=0.005)
        batcher.start()
        answers = await asyncio.gather(*(batcher.predict(images(value)) for value in range(40)))
        await batcher.stop()
        return answers

    answers = run(scenario)
    assert [round(float(answer[0].probabilities[0]) * 255) for answer in answers] == list(range(40))
    assert sum(pair.calls) == 40 and max(pair.calls) <= 8 and len(pair.calls) <= 10


def test_a_lone_request_is_predicted_at_once_and_one_arriving_is_waited_for_up_to_max_wait():
    pair = CountingPair("v1", [], seconds=0)

    async def scenario():
        batcher = MicroBatcher(lambda: pair, max_batch=32, max_wait=0.2)
        batcher.start()
        started = time.perf_counter()
        await batcher.predict(images(1))
        alone = time.perf_counter() - started

        async def arriving_late():
            with batcher.arrival():  # its pictures are being read
                await asyncio.sleep(0.05)
            return await batcher.predict(images(3))

        late = asyncio.ensure_future(arriving_late())
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        await asyncio.gather(batcher.predict(images(2)), late)
        together = time.perf_counter() - started
        await batcher.stop()
        return alone, together

    alone, together = run(scenario)
    assert alone < 0.05 and together < 0.19
    assert pair.calls == [1, 2]  # the second call held both requests


def test_a_request_larger_than_max_batch_is_one_call_and_the_next_keeps_its_turn():
    pair = CountingPair("v1", [])

    async def scenario():
        batcher = MicroBatcher(lambda: pair, max_batch=4, max_wait=0.01)
        batcher.start()
        big, small = await asyncio.gather(batcher.predict(images(*range(6))), batcher.predict(images(7)))
        await batcher.stop()
        return big, small

    big, small = run(scenario)
    assert len(big) == 6 and len(small) == 1 and pair.calls == [6, 1]


def test_each_request_is_answered_by_one_pair_across_a_swap():
    pairs = {"in use": CountingPair("v1", [])}

    async def scenario():
        batcher = MicroBatcher(lambda: pairs["in use"], max_batch=4, max_wait=0.001)
        batcher.start()
        requests = [asyncio.ensure_future(batcher.predict(images(*range(3)))) for _ in range(10)]
        await asyncio.sleep(0.03)
        pairs["in use"] = CountingPair("v2", [])
        answers = await asyncio.gather(*requests)
        await batcher.stop()
        return answers

    answers = run(scenario)
    versions = [{answer.version for answer in request} for request in answers]
    assert all(len(seen) == 1 for seen in versions)
    assert versions[0] == {"v1"} and versions[-1] == {"v2"}


def test_a_failing_call_fails_its_requests_only():
    class Failing(CountingPair):
        def predict(self, images):
            if images[0, 0, 0, 0] == 99:
                raise RuntimeError("broken")
            return super().predict(images)

    pair = Failing("v1", [])

    async def scenario():
        batcher = MicroBatcher(lambda: pair, max_batch=1, max_wait=0)
        batcher.start()
        results = await asyncio.gather(batcher.predict(images(99)), batcher.predict(images(5)), return_exceptions=True)
        await batcher.stop()
        return results

    failed, answered = run(scenario)
    assert isinstance(failed, RuntimeError) and round(float(answered[0].probabilities[0]) * 255) == 5
