"""Group commit for answers: the answers that arrive together are read together, then stored
in one transaction.

During a crisis volunteers answer in bulk, and an answer's cost in PostgreSQL is mostly its
commit: the WAL flush, and the coordinators' notification, which PostgreSQL sends under a lock
held through that flush, so notifying commits queue one behind the other. An
:class:`AnswerBatch` stores every answer of one app instance: it writes what it holds at once
(:func:`dispatch.storage.answers.commit`: one statement, one commit, one notification) and,
while that commit runs, collects the answers that arrive meanwhile for the next one. Nothing
waits on a timer: a lone answer is written at once, and under load the batch grows by itself
to what arrives during one commit. A :class:`ReadBatch` does the same for the answers' first
read (:func:`dispatch.storage.answers.read_many`: one round trip instead of one each).

Each answer keeps its own outcome (:class:`~dispatch.storage.answers.Outcome`; a stale row or
a taken key writes nothing for that answer and its caller reads again). If a batch's statement
fails as a whole (a deadlock, a lost connection, a constraint one item breaks), nothing of it
took effect, and each of its items is run again alone, so that the error reaches only the
request it belongs to (should a commit have gone through before the connection was lost, the
answers find their rows moved, and their requests read again and replay what their keys hold).
A caller's outcome is known only once its transaction has committed (or failed): a response is
never sent for an answer that could still be lost.

One task per batch runs its statements, one after the other, and keeps its pooled connection
while items keep coming, so that it never queues for one behind other requests. (Two writers
overlapping their batches measured slower: smaller batches, same commits in a row.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import asyncpg

from dispatch.storage.answers import Answer, Outcome, Seen, Wanted, commit, read_many

log = logging.getLogger("muster.answers")

__all__ = ["AnswerBatch", "Batch", "ReadBatch"]

T = TypeVar("T")
R = TypeVar("R")


class Batch(Generic[T, R]):
    """Items waiting for one statement (``run``: a connection and the batch's items, one result
    each, in order), run one batch at a time by one writer task.

    ``observe`` (optional) is told the size of every batch run, e.g. for a histogram;
    :attr:`batches` and :attr:`items` count what was run in batches."""

    def __init__(
        self,
        pool: Any,
        run: Callable[[asyncpg.Connection, Sequence[T]], Awaitable[list[R]]],
        *,
        name: str,
        max_size: int = 256,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        self.pool = pool
        self.run = run
        self.name = name
        self.max_size = max_size
        self.observe = observe
        self.batches = 0  # statements run
        self.items = 0  # items in them
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._current: list[tuple[T, asyncio.Future[R]]] = []  # the batch being run

    async def submit(self, item: T) -> R:
        """Run ``item`` with whatever else is waiting; its result once its statement is done.

        Raises the error of its own statement if it failed alone (see the module's
        docstring)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)
        self._waiting.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name=self.name)
        # The item is run even if its request goes away meanwhile: shield the future, so that
        # the writer alone settles it.
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Wait until every item handed over so far has run."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write(self) -> None:
        """Run batches until nothing waits; each batch is what came during the last one."""
        try:
            while self._waiting:
                failed: tuple[list[tuple[T, asyncio.Future[R]]], Exception] | None = None
                try:
                    async with self.pool.acquire() as con:
                        while self._waiting and failed is None:
                            batch = self._take()
                            try:
                                results = await self.run(con, [item for item, _ in batch])
                            except Exception as exc:
                                failed = batch, exc
                            else:
                                self._done(batch, results)
                except Exception as exc:  # no connection to be had (or to give back)
                    failed = failed or (self._take(), exc)
                if failed is not None:  # on fresh connections: the failure may have been ours
                    await self._one_by_one(*failed)
        except asyncio.CancelledError:
            # Shut down mid-way: nobody will run these (settled futures stay as they are).
            for _, future in self._current + self._waiting:
                future.cancel()
            self._waiting.clear()
            raise
        finally:
            # Before the task ends (no await in between), so that the next item starts one.
            self._writer = None

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch = self._current = self._waiting[: self.max_size]
        del self._waiting[: self.max_size]
        return batch

    def _done(self, batch: list[tuple[T, asyncio.Future[R]]], results: list[R]) -> None:
        self.batches += 1
        self.items += len(batch)
        if self.observe is not None:
            self.observe(len(batch))
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result)

    async def _one_by_one(self, batch: list[tuple[T, asyncio.Future[R]]], exc: Exception) -> None:
        """Nothing of ``batch`` took effect: each item alone gets its own result or error, so
        that one bad item (or a deadlock with another transaction) fails no other."""
        self._current = batch
        if len(batch) > 1:
            log.warning("%s: a batch of %d failed (%r); one by one", self.name, len(batch), exc)
        for item, future in batch:
            try:
                async with self.pool.acquire() as con:
                    results = await self.run(con, [item])
            except Exception as error:
                _settle(future, error)
            else:
                self._done([(item, future)], results)


class AnswerBatch(Batch[Answer, Outcome]):
    """The answers of one app instance waiting to be stored (:func:`answers.commit`)."""

    def __init__(
        self, pool: Any, *, max_size: int = 256, observe: Callable[[int], None] | None = None
    ) -> None:
        super().__init__(pool, commit, name="answer-batch", max_size=max_size, observe=observe)

    async def store(self, answer: Answer) -> Outcome:
        """Store ``answer`` with whatever else is waiting; its outcome once committed."""
        return await self.submit(answer)


class ReadBatch(Batch[Wanted, "Seen | None"]):
    """The answers of one app instance waiting for their first read (:func:`answers.read_many`)."""

    def __init__(self, pool: Any, *, max_size: int = 256) -> None:
        super().__init__(pool, read_many, name="answer-reads", max_size=max_size)

    async def read(self, wanted: Wanted) -> Seen | None:
        """What :func:`answers.read` returns, read together with the others waiting."""
        return await self.submit(wanted)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark the error as seen: a request that went away no longer awaits its result."""
    if not future.cancelled():
        future.exception()


def _settle(future: asyncio.Future[R], result: R | Exception) -> None:
    with contextlib.suppress(asyncio.InvalidStateError):
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)
