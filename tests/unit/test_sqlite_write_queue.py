"""The SQLite write queue: one writer at a time across threads and processes, and a write nested
in a thread's own write never gives the turn away early."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import event

from scim_server.store.db import Database, SQLiteWriteQueue


def _someone_else_can_write(lock_path: Path) -> bool:
    """What another process would find: try the lock on a descriptor of its own."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_the_turn_is_held_until_the_outermost_write_ends(tmp_path: Path) -> None:
    queue = SQLiteWriteQueue(str(tmp_path / "scim.db"))
    lock = tmp_path / "scim.db-writelock"
    with queue.turn():
        assert not _someone_else_can_write(lock)
        with queue.turn():
            pass
        assert not _someone_else_can_write(lock), "the nested write released the outer turn"
    assert _someone_else_can_write(lock)


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    queue = SQLiteWriteQueue(str(tmp_path / "scim.db"))
    inside = 0
    most = 0
    guard = threading.Lock()
    barrier = threading.Barrier(6)

    def writer() -> None:
        nonlocal inside, most
        barrier.wait()
        for _ in range(50):
            with queue.turn():
                with guard:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.0005)  # long enough for a second writer to get in, were it let in
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1


def test_another_process_waits_for_the_turn(tmp_path: Path) -> None:
    """Another process (another gunicorn worker, the CLI) sees the turn taken."""
    queue = SQLiteWriteQueue(str(tmp_path / "scim.db"))
    script = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(3)\n"
    )
    lock = str(tmp_path / "scim.db-writelock")
    with queue.turn():
        held = subprocess.run([sys.executable, "-c", script, lock], check=False)
    free = subprocess.run([sys.executable, "-c", script, lock], check=False)
    assert held.returncode == 3
    assert free.returncode == 0


def test_a_lock_file_that_cannot_be_opened_leaves_writes_to_sqlite(tmp_path: Path) -> None:
    folder = tmp_path / "elsewhere"  # no such folder: the lock file cannot be created
    queue = SQLiteWriteQueue(str(folder / "scim.db"))
    with queue.turn():
        entered = True
    assert entered


def test_a_write_on_a_bare_connection_takes_the_turn_and_begins_immediate(tmp_path: Path) -> None:
    """``Database.connection(write=True)`` (the audit recorder's) writes as ``transaction``
    does: in the queue's turn, in a ``BEGIN IMMEDIATE`` transaction, rolled back on error."""
    database = Database(f"sqlite:///{tmp_path / 'scim.db'}")
    lock = tmp_path / "scim.db-writelock"
    begun: list[str] = []
    event.listen(
        database.engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *args: begun.append(statement),
    )
    try:
        with database.connection(write=True) as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            assert not _someone_else_can_write(lock)
        assert _someone_else_can_write(lock)
        assert begun[0] == "BEGIN IMMEDIATE"
        begun.clear()
        with database.connection(write=False) as connection:
            connection.exec_driver_sql("SELECT count(*) FROM t")
            assert _someone_else_can_write(lock)
        assert begun[0] == "BEGIN"
        try:
            with database.connection(write=True) as connection:
                connection.exec_driver_sql("INSERT INTO t VALUES (1)")
                raise RuntimeError("the batch fails")
        except RuntimeError:
            pass
        with database.connection(write=False) as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
    finally:
        database.dispose()
