"""The SQLite write queue: one writer at a time across threads and processes, and a write nested
in a thread's own write never gives the turn away early."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from scim_server.store.db import SQLiteWriteQueue


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
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1

