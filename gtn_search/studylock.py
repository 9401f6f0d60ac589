"""One writer per study: an advisory lock held by a search for the study's whole lifetime.

``<study>.lock`` (next to the database) is locked with ``flock`` by the process that runs the search
(or a comparison); the kernel releases it when that process ends, however it ends (SIGKILL too), so
a lock is never stale. The holder writes its pid, host, command and start time into the file for the
message a second process gets. Readers (``show``, ``export``) take no lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from gtn_search.errors import StorageError


def _command() -> str:
    """How this process was started, for other processes' messages (``gtn-search ...`` for the CLI)."""
    argv = list(sys.argv) or ["python"]
    program = Path(argv[0])
    if program.name == "gtn-search" or program.parts[-2:] == ("gtn_search", "__main__.py"):
        argv[0] = "gtn-search"
    return shlex.join(argv)


class StudyLock:
    """An exclusive lock on ``path`` (a study or comparison database) for as long as it is held.

    ``what`` names the thing in messages ("study", "comparison").
    """

    def __init__(self, path: str | os.PathLike[str], what: str = "study") -> None:
        self.path = Path(os.path.abspath(path))
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise StorageError naming the process that holds it."""
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"{self.what} {self.path}: cannot create files in {self.lock_path.parent} "
                               f"({exc.strerror or exc}); it needs a writable folder for itself, its lock file "
                               f"{self.lock_path.name} and SQLite's -wal/-shm files: choose a writable "
                               f"'{'study' if self.what == 'study' else 'out'}' path") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _describe_holder(fd)
            os.close(fd)
            raise StorageError(f"{self.what} {self.path} is in use by {holder}; wait for it to finish or stop "
                               f"it") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (ending the process does it too)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _describe_holder(fd: int) -> str:
    """'pid 1234 on host (command) since <time>' from the lock file, as far as it can be read."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode())
        since = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(float(info["since"])))
        return f"pid {int(info['pid'])} on {info['host']} ({info['command']}) since {since}"
    except (OSError, ValueError, KeyError, TypeError):  # the holder has not written it yet
        return "another process"
