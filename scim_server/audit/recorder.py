"""Group commit of the events of requests that wrote nothing: reads, refusals, failures.

Every request writes an event, so a read costs a write transaction: on SQLite it waits for the
database's one write lock, on PostgreSQL for a WAL flush behind its organisation's chain head.
The events of concurrent requests of one process are therefore sealed together: a request hands
its event in and waits until the transaction holding it has committed (nothing is answered
before its event is durable, as before); whichever waiting request finds no batch being written
writes everything queued so far in one transaction, one chain head lock and advance per
organisation (``chain.append_all``). Alone, a request writes its own event at once, so a quiet
server behaves as before; under load the transactions per event fall with the queue's length.

A batch the database refuses is retried one event per transaction, so one event it cannot take
costs the others nothing; a batch that fails because the database is unreachable or busy fails
for every event at once (retrying each alone would only multiply the wait, and after a lost
connection a COMMIT's outcome is unknown). The failing request's caller logs the error, as it
always did.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError

from scim_server.audit.chain import append_rows
from scim_server.audit.events import EventDraft
from scim_server.store.db import Database
from scim_server.store.errors import database_unavailable

#: Events per transaction at most: bounds the lock hold time and the statement's size.
MAX_BATCH = 64


@dataclass
class _Waiting:
    draft: EventDraft
    done: bool = False
    written: bool = False
    error: BaseException | None = None


class EventRecorder:
    """Seals events in shared transactions; one per process (threads of a gthread worker)."""

    def __init__(self, database: Database, max_batch: int = MAX_BATCH) -> None:
        self._database = database
        self._max_batch = max_batch
        self._turn = threading.Condition()
        self._queue: list[_Waiting] = []
        self._writing = False

    @property
    def queued(self) -> int:
        """Events waiting for a batch to be written (not those being written now)."""
        with self._turn:
            return len(self._queue)

    @property
    def writing(self) -> bool:
        """Whether a batch is being written now."""
        with self._turn:
            return self._writing

    def record(self, draft: EventDraft) -> None:
        """Return once ``draft`` is committed; raise what its transaction raised."""
        mine = _Waiting(draft)
        with self._turn:
            self._queue.append(mine)
        while True:
            with self._turn:
                while not mine.done and self._writing:
                    self._turn.wait()
                if mine.done:
                    break
                # nobody is writing: write the oldest queued events (a full batch may leave
                # this one for the next round)
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                self._writing = True
            try:
                self._write(batch)
            finally:
                with self._turn:
                    self._writing = False
                    self._turn.notify_all()
        if mine.error is not None:
            raise mine.error

    def _write(self, batch: list[_Waiting]) -> None:
        try:
            self._write_batch(batch)
        except BaseException as error:  # the writer's own thread is ending: fail the rest
            for waiting in batch:
                if not waiting.written and waiting.error is None:
                    waiting.error = error
            raise
        finally:
            for waiting in batch:
                waiting.done = True

    def _write_batch(self, batch: list[_Waiting]) -> None:
        try:
            with self._database.connection(write=True, wait_for_locks=True) as connection:
                append_rows(connection, [waiting.draft for waiting in batch])
        except Exception as error:
            for waiting in batch:
                waiting.draft.recorded = False
            unavailable = isinstance(error, DBAPIError) and database_unavailable(error)
            if len(batch) == 1 or unavailable:
                for waiting in batch:
                    waiting.error = error
            else:
                for waiting in batch:
                    self._write_alone(waiting)
            return
        for waiting in batch:
            waiting.written = True

    def _write_alone(self, waiting: _Waiting) -> None:
        try:
            with self._database.connection(write=True, wait_for_locks=True) as connection:
                append_rows(connection, [waiting.draft])
        except Exception as error:
            waiting.draft.recorded = False
            waiting.error = error
        else:
            waiting.written = True
