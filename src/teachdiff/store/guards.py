"""Guards of a long training run: one run per output folder, and a clean stop on Ctrl-C.

:class:`FolderLock` makes a second run on the same ``--out`` folder fail at once instead of
silently interleaving its checkpoints with the first's. It holds an operating-system lock on
``FOLDER/train.lock`` (through ``filelock``: ``flock`` on Unix, ``LockFileEx`` on Windows), which
the OS releases when the process ends in any way, crash and ``kill -9`` included; so a lock is
never left stale. Who holds it (PID, host, start time) is written beside it to
``FOLDER/train.lock.json``, for the message of the run that is refused. That file outliving
its process is how a crashed run is recognised: the next run takes the lock over and says so.

:class:`GracefulStop` turns the first SIGINT (Ctrl-C, or a notebook's interrupt button) or
SIGTERM (``kill``, a batch scheduler's time limit) into a request that the training loop reads
after each step: it finishes the step, writes an atomic checkpoint and returns, so that
``--resume`` continues exactly where it stopped. A second signal aborts at once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import filelock

__all__ = ["FolderLock", "FolderInUseError", "GracefulStop", "LOCK_NAME"]

LOCK_NAME = "train.lock"


class FolderInUseError(FileExistsError):
    """Another process holds the lock of the folder."""


class FolderLock:
    """Exclusive lock on a run folder for the duration of a ``with`` block (see the module docstring).

    Entering raises :class:`FolderInUseError` at once, naming the lock file and the holder's PID,
    when another process (or another ``train`` call in this one) holds the folder.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.owner_path = self.folder / f"{LOCK_NAME}.json"
        self._lock = filelock.FileLock(str(self.path), timeout=0)

    def __enter__(self) -> "FolderLock":
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise FolderInUseError(
                f"{self.folder} is in use by another training run ({_describe(_read_owner(self.owner_path))}; "
                f"lock file {self.path}). Wait for that run to end or stop it, or choose another --out folder."
            ) from None
        previous = _read_owner(self.owner_path)
        if previous:  # its process ended without releasing the lock: it crashed or was killed
            print(f"note: taking over the lock {self.path} left by a run that no longer holds it "
                  f"({_describe(previous)}; it crashed or was killed).", file=sys.stderr)
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        tmp = self.owner_path.with_name(f"{self.owner_path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(owner))
        os.replace(tmp, self.owner_path)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.owner_path.unlink(missing_ok=True)
        finally:
            self._lock.release()


def _read_owner(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _describe(owner: dict) -> str:
    if not owner.get("pid"):
        return "PID unknown"
    return f"PID {owner['pid']} on {owner.get('host', '?')}, started {owner.get('started', '?')}"


class GracefulStop:
    """Catch SIGINT and SIGTERM while a loop runs; ``requested`` names the first signal received.

    ``start()`` installs the handlers (only in the main thread, where Python delivers signals);
    leaving the ``with`` block restores the previous ones. Before ``start()`` a signal acts as
    usual, e.g. Ctrl-C during data preparation raises ``KeyboardInterrupt`` at once.
    """

    signals = ("SIGINT", "SIGTERM")

    def __init__(self):
        self.requested: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "GracefulStop":
        return self

    def start(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.signals:
            number = getattr(signal, name, None)
            if number is not None:
                self._previous[number] = signal.signal(number, self._handle)

    def _handle(self, number: int, frame) -> None:
        name = signal.Signals(number).name
        if self.requested is not None:
            self._restore()
            raise KeyboardInterrupt(f"second {name}: stopped without a checkpoint")
        self.requested = name
        print(f"\n{name} received: finishing this step, then writing a checkpoint to resume from "
              "(send it again to stop at once, without one).", file=sys.stderr, flush=True)

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def __exit__(self, *exc) -> None:
        self._restore()


def ignore_interrupts(worker_id: int | None = None) -> None:
    """``worker_init_fn`` of DataLoader workers: Ctrl-C reaches the whole process group, and a
    worker killed by it would break the main process's clean stop."""
    for name in GracefulStop.signals:
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, signal.SIG_IGN)
