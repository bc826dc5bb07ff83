"""The model service's queue in-process: batches by tokens, refuses quickly when the wait is
too long, drops the work of callers who went away, and is not skewed by one long batch."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from prescore.models.inputs import count_tokens, words
from prescore.serving.workload import (
    CallerGone,
    Overloaded,
    TokenBatcher,
    unless_disconnected,
)


class Model:
    """Doubles each item; takes `seconds_per_item` per item, or waits for `gate`."""

    def __init__(self, seconds_per_item: float = 0.0) -> None:
        self.seconds_per_item = seconds_per_item
        self.batches: list[list[int]] = []
        self.gate: threading.Event | None = None

    def __call__(self, items: list[int]) -> list[int]:
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.seconds_per_item * len(items))
        self.batches.append(list(items))
        return [2 * item for item in items]


def test_concurrent_requests_share_batches_of_at_most_the_token_budget() -> None:
    model = Model()
    model.gate = threading.Event()

    async def scenario() -> list[list[int]]:
        batcher = TokenBatcher(model, max_batch_tokens=100, max_wait=30)
        first = asyncio.ensure_future(batcher.submit([0], 10))  # starts alone, held by the gate
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.submit([n, n + 100], 40)) for n in range(1, 5)]
        await asyncio.sleep(0.05)
        model.gate.set()
        return await asyncio.gather(first, *rest)

    results = asyncio.run(scenario())
    assert results == [[0], *[[2 * n, 2 * (n + 100)] for n in range(1, 5)]]
    assert [len(b) for b in model.batches] == [1, 4, 4]  # 40 + 40 tokens per call, not 160


def test_a_request_larger_than_a_batch_runs_alone() -> None:
    model = Model()
    results = asyncio.run(TokenBatcher(model, max_batch_tokens=5, max_wait=30).submit([1, 2], 50))
    assert results == [2, 4] and model.batches == [[1, 2]]


def test_a_full_queue_refuses_at_once_with_a_retry_time() -> None:
    model = Model(seconds_per_item=0.01)

    async def scenario() -> tuple[float, Overloaded]:
        batcher = TokenBatcher(model, max_batch_tokens=10, max_wait=1.0)
        await batcher.submit([1], 10)  # learns ~1 ms per token
        model.gate = threading.Event()
        # each 5 s of work at the learnt rate, far over the 1 s bound: the first runs (held by
        # the gate), the later ones are refused; with 1 s each the last refusal depended on
        # scheduling overhead, and a slow moment let the request below queue behind the gate
        queued = [asyncio.ensure_future(batcher.submit([n], 5000)) for n in range(3)]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(Overloaded) as refused:
            await batcher.submit([9], 10)
        waited = time.monotonic() - started
        model.gate.set()
        await asyncio.gather(*queued, return_exceptions=True)
        return waited, refused.value

    waited, refusal = asyncio.run(scenario())
    assert waited < 0.1 and 1 <= refusal.retry_after <= 60


def test_a_request_that_waited_past_its_deadline_is_refused_not_run() -> None:
    model = Model()
    model.gate = threading.Event()

    async def scenario() -> None:
        batcher = TokenBatcher(model, max_batch_tokens=10, max_wait=0.2)
        running = asyncio.ensure_future(batcher.submit([1], 10))
        await asyncio.sleep(0.05)
        late = asyncio.ensure_future(batcher.submit([2], 10))  # admitted: nothing measured yet
        await asyncio.sleep(0.4)
        model.gate.set()
        assert await running == [2]
        with pytest.raises(Overloaded):
            await late

    asyncio.run(scenario())
    assert model.batches == [[1]]


def test_a_cancelled_caller_takes_its_work_out_of_the_queue() -> None:
    model = Model()
    model.gate = threading.Event()

    async def scenario() -> None:
        batcher = TokenBatcher(model, max_batch_tokens=100, max_wait=30)
        running = asyncio.ensure_future(batcher.submit([1], 10))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(batcher.submit([2], 10))
        kept = asyncio.ensure_future(batcher.submit([3], 10))
        await asyncio.sleep(0.05)
        gone.cancel()
        await asyncio.sleep(0.05)
        assert batcher.queued_tokens == 10
        model.gate.set()
        assert await running == [2] and await kept == [6]

    asyncio.run(scenario())
    assert model.batches == [[1], [3]]  # item 2 never reached the model


def test_a_disconnected_client_cancels_its_queued_work() -> None:
    """The HTTP side: when the client's connection drops, its request leaves the queue."""
    model = Model()
    model.gate = threading.Event()

    async def scenario() -> None:
        batcher = TokenBatcher(model, max_batch_tokens=100, max_wait=30)
        running = asyncio.ensure_future(batcher.submit([1], 10))
        await asyncio.sleep(0.05)
        hang_up = asyncio.Event()

        async def receive() -> dict[str, str]:
            await hang_up.wait()
            return {"type": "http.disconnect"}

        call = asyncio.ensure_future(unless_disconnected(receive, batcher.submit([2], 10)))
        await asyncio.sleep(0.05)
        assert batcher.queued_tokens == 10
        hang_up.set()
        with pytest.raises(CallerGone):
            await call
        assert batcher.queued_tokens == 0
        model.gate.set()
        assert await running == [2]

        async def connected() -> dict[str, str]:
            await asyncio.sleep(60)
            return {"type": "http.disconnect"}

        assert await unless_disconnected(connected, batcher.submit([3], 10)) == [6]

    asyncio.run(scenario())
    assert model.batches == [[1], [3]]


def test_one_long_batch_does_not_skew_the_wait_estimate() -> None:
    """Per token, a long batch costs what short ones do: the next short request is admitted
    (BentoML's per-batch fit refused nearly everything after one)."""
    model = Model(seconds_per_item=0.001)

    async def scenario() -> None:
        batcher = TokenBatcher(model, max_batch_tokens=10_000, max_wait=0.5)
        await batcher.submit([1] * 5, 5)
        await batcher.submit(list(range(1000)), 1000)  # one second
        assert batcher.seconds_per_token is not None and batcher.seconds_per_token < 0.002
        assert await batcher.submit([7], 1) == [14]

    asyncio.run(scenario())


def test_a_failing_batch_fails_its_callers_and_the_next_one_runs() -> None:
    calls: list[list[int]] = []

    def flaky(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return items

    async def scenario() -> None:
        batcher = TokenBatcher(flaky, max_batch_tokens=10, max_wait=30)
        with pytest.raises(RuntimeError):
            await batcher.submit([1], 1)
        assert await batcher.submit([2], 1) == [2]

    asyncio.run(scenario())


def test_tokens_are_the_tokenizers_and_words_bound_them_from_below() -> None:
    from transformers import AutoTokenizer

    from prescore.models.base_model import bundled_base_model

    tokenizer = AutoTokenizer.from_pretrained(bundled_base_model())
    texts = ["The students waited; wait-time rose to 3.5 seconds.", "Überraschung! 🙂"]
    counted = count_tokens(texts, tokenizer)
    assert counted == [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert all(words(t) <= n for t, n in zip(texts, counted, strict=True))
    assert count_tokens(texts, None) == [8, 2]


class Recorder:
    """Doubles each item; records each call's thread and when it ran. `gate` holds the first
    call until set; `together` holds each narrow call until two are in flight."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, float, list[int]]] = []
        self.gate = threading.Event()
        self.together = threading.Barrier(2, timeout=5)
        self.lock = threading.Lock()

    def __call__(self, items: list[int]) -> list[int]:
        started = time.monotonic()
        name = threading.current_thread().name
        if not self.calls and not self.gate.is_set():
            self.gate.wait(10)
        elif "stream" in name:
            self.together.wait()  # raises BrokenBarrierError unless another call runs too
        time.sleep(0.01)
        with self.lock:
            self.calls.append((name, started, time.monotonic(), list(items)))
        return [2 * item for item in items]


def test_with_two_streams_a_lone_request_takes_every_core_and_a_queue_splits_side_by_side() -> None:
    model = Recorder()

    async def scenario() -> list[list[int]]:
        batcher = TokenBatcher(model, max_batch_tokens=1000, max_wait=30, streams=2)
        first = asyncio.ensure_future(batcher.submit([0], 10))  # alone: the wide thread
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.submit([n], 10)) for n in range(1, 5)]
        await asyncio.sleep(0.05)
        model.gate.set()
        return await asyncio.gather(first, *rest)

    results = asyncio.run(scenario())
    assert results == [[2 * n] for n in range(5)]
    wide, *narrow = model.calls
    assert wide[0].startswith("prescore-model_") and wide[3] == [0]
    # the four queued behind it: two calls of two, on two narrow threads, at the same time
    assert sorted(len(call[3]) for call in narrow) == [2, 2]
    assert len({call[0] for call in narrow}) == 2 and all("stream" in c[0] for c in narrow)
    assert all(call[1] >= wide[2] for call in narrow)  # narrow never beside wide
    assert sorted(n for call in narrow for n in call[3]) == [1, 2, 3, 4]


def test_with_streams_off_for_the_runtime_every_call_runs_alone_on_the_wide_thread() -> None:
    model = Model()
    model.gate = threading.Event()

    async def scenario() -> None:
        batcher = TokenBatcher(model, max_batch_tokens=1000, max_wait=30, streams=2)
        batcher.side_by_side = False  # an ONNX runtime (ModelHost.use_runtime)
        first = asyncio.ensure_future(batcher.submit([0], 10))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.submit([n], 10)) for n in range(1, 5)]
        await asyncio.sleep(0.05)
        model.gate.set()
        await asyncio.gather(first, *rest)

    asyncio.run(scenario())
    assert [len(b) for b in model.batches] == [1, 4]


def test_when_streams_turn_off_mid_load_the_wide_thread_waits_for_the_narrow_calls() -> None:
    """A reload onto an ONNX runtime turns streams off while narrow calls run: the next call
    must not take every core beside them."""
    calls: list[tuple[str, float, float]] = []
    lock = threading.Lock()

    def model(items: list[int]) -> list[int]:
        started = time.monotonic()
        time.sleep(0.2)
        with lock:
            calls.append((threading.current_thread().name, started, time.monotonic()))
        return items

    async def scenario() -> None:
        batcher = TokenBatcher(model, max_batch_tokens=1000, max_wait=30, streams=2)
        first = asyncio.ensure_future(batcher.submit([0], 10))  # wide
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(batcher.submit([n], 10)) for n in range(1, 5)]
        await first  # the four split over the two narrow threads now
        await asyncio.sleep(0.05)
        batcher.side_by_side = False
        last = asyncio.ensure_future(batcher.submit([5], 10))
        await asyncio.gather(*queued, last)

    asyncio.run(scenario())
    wide_first, *narrow, wide_last = sorted(calls, key=lambda call: call[1])
    assert all("stream" in call[0] for call in narrow) and len(narrow) == 2
    assert "stream" not in wide_last[0] and "stream" not in wide_first[0]
    assert wide_last[1] >= max(call[2] for call in narrow)  # started after both had ended


def test_words_are_runs_of_anything_but_unicode_space() -> None:
    import re

    text = "a\u00a0b\u2003c\u3000d\x1ce\x85f  g\n\th \u200bi"  # \u200b is not a space
    assert words(text) == len(re.findall(r"\S+", text)) == 9
    assert words("") == words(" \n ") == 0
