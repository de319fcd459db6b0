"""One queue in front of the process's shared Whisper: a fixed number of worker threads, short
work first, a bound on what may wait.

Every call of a process transcribes on the same model. Run in the default executor (FIFO, as
many threads as it likes), a call's 2 s question waits behind every other call's 20 s meeting
turn that came first, and N calls' segments all run at once, each N times slower. Here:

- `workers` threads run transcriptions, one each at a time (the model itself uses the cores).
- Two lanes: `Lane.FIRST` (speculative transcriptions and turns up to a few seconds: what an
  addressed question is) runs before `Lane.AFTER` (longer meeting turns, for the record), FIFO
  within a lane. A running job is never interrupted: a short one waits at most for the jobs
  already running.
- `max_queue` bounds the jobs waiting. A `droppable` job (a speculation: the turn's full
  transcription follows it anyway) is refused with `Dropped` when that many wait, and a waiting
  droppable job is dropped to make room for one that is not. Record turns are never refused:
  past the bound they wait like the others (the words of a meeting are not thrown away; the
  call cap, CONVENE_MAX_CALLS, is what bounds how many calls can add to the queue).
- A job whose waiter is cancelled (the call ended) before a worker takes it does not run.

No Pipecat here: `submit` takes any blocking callable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import heapq
import itertools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Lane(IntEnum):
    FIRST = 0  # speculations and short turns (questions)
    AFTER = 1  # long turns: the record, not a reply, waits on them


class Dropped(Exception):
    """A droppable transcription the queue had no room for (or dropped for a record turn)."""


def default_workers() -> int:
    """One per CPU this process may run on: 2 on a 2-core box (benchmarks/load.py, 8 calls:
    segment-to-stored lag p95 2.4 s with 2, 4.1 s with 1)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus)


@dataclass(order=True)
class _Job:
    lane: int
    seq: int
    run: Callable[[], Any] = field(compare=False)
    future: concurrent.futures.Future[Any] = field(compare=False)
    droppable: bool = field(compare=False)


class TranscriptionQueue:
    """A priority queue of blocking transcriptions with `workers` threads (see the module)."""

    def __init__(self, *, workers: int | None = None, max_queue: int = 32) -> None:
        if workers is not None and workers < 1:
            raise ValueError("workers: at least 1")
        if max_queue < 1:
            raise ValueError("max_queue: at least 1")
        self.workers = workers or default_workers()
        self.max_queue = max_queue
        self.dropped = 0
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._running = 0
        self._closed = False
        self._ready = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, name=f"stt-worker-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def waiting(self) -> int:
        """Jobs queued and not yet taken by a worker."""
        with self._ready:
            return len(self._heap)

    @property
    def running(self) -> int:
        with self._ready:
            return self._running

    def submit(
        self, run: Callable[[], T], *, lane: Lane, droppable: bool = False
    ) -> concurrent.futures.Future[T]:
        """Queue `run`; its result (or exception) comes in the returned future. Raises
        `Dropped` for a droppable job when `max_queue` jobs are waiting."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the transcription queue is closed")
            if len(self._heap) >= self.max_queue:
                if droppable:
                    self._forget_cancelled()
                else:
                    self._drop_one_droppable()
                if droppable and len(self._heap) >= self.max_queue:
                    self.dropped += 1
                    raise Dropped(f"{len(self._heap)} transcriptions waiting")
            heapq.heappush(self._heap, _Job(int(lane), next(self._seq), run, future, droppable))
            self._ready.notify()
        return future

    async def run(self, run: Callable[[], T], *, lane: Lane, droppable: bool = False) -> T:
        """Await `run` through the queue. Cancelling the await before a worker takes the job
        takes it out; once running, it finishes in its thread and its result is dropped."""
        return await asyncio.wrap_future(self.submit(run, lane=lane, droppable=droppable))

    def close(self) -> None:
        """Stop the workers once the jobs already running finish; waiting jobs are cancelled."""
        with self._ready:
            self._closed = True
            for job in self._heap:
                job.future.cancel()
            self._heap.clear()
            self._ready.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()

    def _forget_cancelled(self) -> None:
        """Under the lock: jobs whose waiters went away hold no place."""
        self._heap = [job for job in self._heap if not job.future.cancelled()]
        heapq.heapify(self._heap)

    def _drop_one_droppable(self) -> None:
        """Under the lock: forget cancelled jobs; then, if still full, the oldest waiting
        droppable job gives its place up, if there is one."""
        self._forget_cancelled()
        if len(self._heap) < self.max_queue:
            return
        droppable = [job for job in self._heap if job.droppable]
        if not droppable:
            return
        oldest = min(droppable, key=lambda job: job.seq)
        self._heap.remove(oldest)
        heapq.heapify(self._heap)
        self.dropped += 1
        with contextlib.suppress(concurrent.futures.InvalidStateError):  # cancelled meanwhile
            oldest.future.set_exception(Dropped("dropped for a record turn"))

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._heap and not self._closed:
                    self._ready.wait()
                if self._closed:
                    return
                job = heapq.heappop(self._heap)
                if not job.future.set_running_or_notify_cancel():
                    continue  # its waiter went away before it started
                self._running += 1
            try:
                result = job.run()
            except BaseException as exc:
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)
            finally:
                with self._ready:
                    self._running -= 1


_shared: TranscriptionQueue | None = None
_shared_lock = threading.Lock()


def shared_queue(*, workers: int | None = None, max_queue: int | None = None) -> TranscriptionQueue:
    """The process's queue, created by the first caller, whose sizes it keeps (the server makes
    it at start from prompts/pipeline.yaml `stt.workers` and `stt.max_queue`; None: the
    defaults, or whatever the queue already has)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TranscriptionQueue(workers=workers, max_queue=max_queue or 32)
            log.info(
                "stt: %d Whisper worker(s), at most %d transcriptions waiting",
                _shared.workers,
                _shared.max_queue,
            )
        elif (workers is not None and workers != _shared.workers) or (
            max_queue is not None and max_queue != _shared.max_queue
        ):
            log.warning(
                "stt: the process's queue already runs %d worker(s) / %d waiting; asked for "
                "%s / %s (kept as it is)",
                _shared.workers,
                _shared.max_queue,
                workers,
                max_queue,
            )
        return _shared
