"""Each worker's presence in the study: a lease in the study's storage that says whether the worker may still
start a trial (active) or has nothing to start (idle), renewed every --heartbeat seconds while it lives.

A worker with nothing left to do waits for every other active worker before it ends. Without that, a worker
that is about to start one more trial (one of a killed Ray driver's tasks, say, that Ray ends a moment later)
could start it after the others have left, and the trial it is then cut off in would be queued again with
no worker left to run it. A lease older than twice --heartbeat is a dead worker's."""
from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import optuna

PREFIX = "nnspec:worker:"
ACTIVE, IDLE, GONE = "active", "idle", "gone"


class Presence:
    def __init__(self, study: optuna.Study, heartbeat: float):
        self.study = study
        self.heartbeat = heartbeat
        self.key = f"{PREFIX}{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.state = IDLE
        self._writing = threading.Lock()  # the renewer must not write a state older than the last mark
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="nnspec worker lease", daemon=True)

    def __enter__(self) -> "Presence":
        self._write()
        self._renewer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._renewer.join()
        self.mark(GONE)

    def mark(self, state: str) -> None:
        """Written at once (not at the next renewal): the others decide on it."""
        with self._writing:
            if state != self.state:
                self.state = state
                self._write_locked()

    def others_active(self) -> bool:
        now = time.time()
        leases = self.study._storage.get_study_system_attrs(self.study._study_id)
        return any(key.startswith(PREFIX) and key != self.key and lease["state"] == ACTIVE
                   and now - lease["at"] < 2 * self.heartbeat for key, lease in leases.items())

    def _write(self) -> None:
        with self._writing:
            self._write_locked()

    def _write_locked(self) -> None:
        self.study._storage.set_study_system_attr(self.study._study_id, self.key,
                                                  {"state": self.state, "at": time.time()})

    def _renew(self) -> None:
        while not self._stop.wait(self.heartbeat):
            self._write()
