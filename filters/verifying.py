"""A step's inputs checked while the step runs: their sha256 on a thread, waited for before
the publish (``base.run_step``).

``store.verify`` before a step reads hashed every input file first, on one core, while the
machine's other cores sat idle: ~0.08 s of a pass rate step over 10M rollouts (most of it the
rollouts' row digests, which the step never reads) on a freshly copied store, whose new
inodes are rehashed as they must be.  The cheap half of the check (publish log, signature,
paths, sizes: ``verify_records``) still runs before the step reads anything; the hashing half
(``verify_bytes``: sha256, row counts) runs beside the step (hashlib and file reads release
the GIL).  Nothing corrupt is laundered: a step publishes only after every input's hashes
matched, and when the step fails on a corrupt input its error is the integrity error.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from thinkforge.manifests import DatasetStore, Manifest


class InputHashes:
    """``verify_bytes`` of ``inputs``, on a thread when ``background`` (else here and now)."""

    def __init__(self, store: DatasetStore, inputs: Sequence[Manifest], background: bool):
        self._store, self._inputs = store, list(inputs)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        for m in self._inputs:
            store.verify_records(m)
        if not background:
            self._hash()
            self.wait()
            return
        self._thread = threading.Thread(target=self._hash, name="verify-inputs", daemon=True)
        self._thread.start()

    def _hash(self) -> None:
        try:
            for m in self._inputs:
                self._store.verify_bytes(m)
        except BaseException as exc:  # noqa: BLE001 - raised where the step waits for it
            self._error = exc

    def wait(self) -> None:
        """Block until every input is hashed; raise its integrity error, if any."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def failed_instead(self, step_error: BaseException) -> None:
        """The step failed with ``step_error``: when an input did not verify, that is the
        error (a corrupt input can make the step itself fail first); else return."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error from step_error
