"""How much work a request is, and how the model service queues it: batches by tokens, refuses
quickly when the wait would be too long, drops the work of callers who went away.

Why not BentoML's adaptive batching: its dispatcher counts items, not tokens (a 50,000-character
item weighs what a sentence does), and it fits its latency estimate by least squares over the
last 50 batches in seconds per batch, so one 170-second batch kept it refusing nearly every
request long afterwards. Here the estimate is seconds per token, which a long batch does not
skew, and a request is refused before it queues, not after it has waited.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from starlette.types import Receive

logger = logging.getLogger("prescore.serving")

Item = TypeVar("Item")
Result = TypeVar("Result")
Answer = TypeVar("Answer")

RECENT_BATCHES = 32  # the batches the seconds-per-token estimate is taken over
MAX_RETRY_AFTER = 60  # seconds; beyond this a caller should rather hear "later" than a number


class CallerGone(Exception):
    """The HTTP client disconnected before its answer was ready."""


async def unless_disconnected(receive: Receive, work: Awaitable[Answer]) -> Answer:
    """`work`'s result; if the HTTP client disconnects first (its timeout ran out), `work` is
    cancelled, which takes a queued request out of the model's queue, and CallerGone raised.
    The request body has been read, so the next ASGI message is the disconnect."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(disconnected())
    try:
        done, _ = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
    if task in done:
        return task.result()
    raise CallerGone


class Overloaded(Exception):
    """The wait for the model is longer than the service allows: come back in `retry_after`."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"the model is busy; retry in {retry_after} s")


def retry_after(seconds: float) -> int:
    return min(MAX_RETRY_AFTER, max(1, math.ceil(seconds)))


@dataclass(eq=False)
class Job(Generic[Item, Result]):
    items: list[Item]
    tokens: int
    deadline: float  # time.monotonic() by which it must have started
    future: asyncio.Future[list[Result]] = field(repr=False)


class TokenBatcher(Generic[Item, Result]):
    """Model calls on threads of their own; concurrent requests' items are merged into calls of
    at most `max_batch_tokens` (a request larger than that runs alone).

    With `streams` above 1, work queued behind a call splits into that many calls that run
    at once, each on a narrow thread (`in_model_threads` gives it its share of the cores);
    a call with nothing queued behind it, and nothing else running, runs on the wide thread
    (all the cores), so one request alone is as fast as with one stream. Narrow and wide
    never run together. On 2 cores two one-thread calls scored 23-27 bf16 essays/s where one
    two-thread call scored 20-23: a thread of the HTTP stack preempts one call, and the
    other goes on, where it stalled both threads of the one call at their next barrier
    (eval/RESULTS.md).

    The same thread, because PyTorch's thread settings and OpenMP team belong to the thread
    that calls it: `torch.set_num_threads` on another thread did not reach model calls spread
    over the event loop's worker threads, and each new thread warmed up again (`in_model_thread`
    runs such settings where they count).

    A request is refused (`Overloaded`) when the tokens queued ahead of it would take longer than
    `max_wait` seconds at the rate measured so far, and a queued request that has still not
    started after `max_wait` is refused then; a caller cancelled while queued takes its work
    out of the queue.
    """

    def __init__(
        self,
        run: Callable[[list[Item]], list[Result]],
        max_batch_tokens: int,
        max_wait: float,
        streams: int = 1,
    ) -> None:
        self.run = run
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait
        self.queue: deque[Job[Item, Result]] = deque()
        self.queued_tokens = 0
        self.running: dict[int, tuple[int, float]] = {}  # call -> (tokens, started)
        self._busy_until = 0.0  # when the last call to finish finished: credits model time
        # (tokens, seconds of model time credited to the call: see _run_batch)
        self.recent: deque[tuple[int, float]] = deque(maxlen=RECENT_BATCHES)
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="prescore-model")
        self._narrow = [
            ThreadPoolExecutor(1, thread_name_prefix=f"prescore-model-stream-{n}")
            for n in range(streams if streams > 1 else 0)
        ]
        self._free = list(self._narrow)
        self._narrow_calls: set[asyncio.Task[None]] = set()
        self.side_by_side = True  # whether the narrow threads are used (ModelHost.use_runtime)

    def in_model_threads(self, setting: Callable[[int], object]) -> None:
        """Run `setting(share)` on every model thread, after any batch in progress there: the
        wide one with share 1, each narrow one with the number of streams."""
        self._model_thread.submit(setting, 1).result()
        for thread in self._narrow:
            thread.submit(setting, len(self._narrow)).result()

    @property
    def seconds_per_token(self) -> float | None:
        """Over the recent batches, weighted by their tokens: a small batch's fixed overhead
        or one slow moment weighs little, and a long batch costs per token what short ones
        do, so it cannot skew the estimate. None until a batch has run."""
        tokens = sum(n for n, _ in self.recent)
        return sum(s for _, s in self.recent) / tokens if tokens else None

    def expected_wait(self) -> float:
        """Seconds until work queued now would start, at the measured rate."""
        rate = self.seconds_per_token
        if rate is None:
            return 0.0
        now = time.monotonic()
        running = sum(max(0.0, n * rate - (now - since)) for n, since in self.running.values())
        return self.queued_tokens * rate + running

    async def submit(self, items: list[Item], tokens: int) -> list[Result]:
        """Results in the order of `items`; raises Overloaded, or what the model raised."""
        wait = self.expected_wait()
        if wait > self.max_wait:
            raise Overloaded(retry_after(wait - self.max_wait))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._serve())
        future: asyncio.Future[list[Result]] = asyncio.get_running_loop().create_future()
        job = Job(items, tokens, time.monotonic() + self.max_wait, future)
        self.queue.append(job)
        self.queued_tokens += tokens
        self._wake.set()
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:  # the caller went away: not started, not run
            if job in self.queue:
                self.queue.remove(job)
                self.queued_tokens -= job.tokens
            future.cancel()
            raise

    def _next_batch(self, budget: int | None = None) -> list[Job[Item, Result]]:
        """Jobs from the front, up to the token budget; late ones are refused on the way."""
        budget = self.max_batch_tokens if budget is None else budget
        batch: list[Job[Item, Result]] = []
        tokens = 0
        now = time.monotonic()
        while self.queue:
            job = self.queue[0]
            if batch and tokens + job.tokens > budget:
                break
            self.queue.popleft()
            self.queued_tokens -= job.tokens
            if job.future.done():
                continue
            if now > job.deadline:
                job.future.set_exception(Overloaded(retry_after(self.expected_wait())))
                continue
            batch.append(job)
            tokens += job.tokens
        return batch

    async def _serve(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.queue:
                side_by_side = self._narrow and self.side_by_side
                if not side_by_side or (not self._narrow_calls and len(self.queue) == 1):
                    if self._narrow_calls:
                        break  # narrow calls still run (streams just turned off): their end wakes
                    batch = self._next_batch()  # alone: all the cores on one call
                    if batch:
                        await self._run_batch(batch, self._model_thread)
                    continue
                if not self._free:
                    break  # a narrow call's end wakes this loop again
                # the queue split evenly over the free streams, up to the token budget
                share = math.ceil(self.queued_tokens / len(self._free))
                batch = self._next_batch(min(self.max_batch_tokens, share))
                if batch:
                    self._start_narrow(batch)

    def _start_narrow(self, batch: list[Job[Item, Result]]) -> None:
        thread = self._free.pop()

        async def narrow() -> None:
            try:
                await self._run_batch(batch, thread)
            finally:  # out of the running set before the loop looks again
                self._narrow_calls.discard(task)
                self._free.append(thread)
                self._wake.set()

        task = asyncio.get_running_loop().create_task(narrow())
        self._narrow_calls.add(task)  # held here until it ends: the loop keeps only weak references

    async def _run_batch(self, batch: list[Job[Item, Result]], thread: ThreadPoolExecutor) -> None:
        items = [item for job in batch for item in job.items]
        tokens = sum(job.tokens for job in batch)
        started = time.monotonic()
        call = id(batch)
        self.running[call] = (tokens, started)
        try:
            results = await asyncio.get_running_loop().run_in_executor(thread, self.run, items)
        except Exception as failure:  # every caller in the batch hears it; the next batch runs
            logger.error("a batch of %d items failed: %s", len(items), type(failure).__name__)
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(failure)
            return
        finally:
            del self.running[call]
        # calls side by side share the time: each is credited with the time since the later of
        # its start and the last call's end, so the credits add up to the time the model was busy
        finished = time.monotonic()
        self.recent.append((max(tokens, 1), finished - max(started, self._busy_until)))
        self._busy_until = finished
        start = 0
        for job in batch:
            if not job.future.done():
                job.future.set_result(results[start : start + len(job.items)])
            start += len(job.items)
