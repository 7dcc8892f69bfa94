"""The Dask worker plugin that closes a worker's cached teacher backends when the worker
closes (generators/fanout.py).  Its own module: it imports ``distributed``, which only
``--executor dask`` needs.

Why: vLLM's offline engine runs in processes of its own.  Left to interpreter exit, the
engine's shutdown outlasts the 4 s a Dask nanny gives a closing worker process, the
worker is killed, and the engine core lives on as an orphan that keeps a core busy.
"""

from __future__ import annotations

from collections.abc import Callable

from distributed import WorkerPlugin


class CloseBackends(WorkerPlugin):
    name = "thinkforge-close-backends"
    # registered by every fanned-out run: once is enough, and re-registering would tear
    # down (close) the engines the worker keeps between runs
    idempotent = True

    def __init__(self, close: Callable[[], None]):
        self._close = close  # fanout.close_backends (passed in: no import cycle)

    def teardown(self, worker) -> None:
        self._close()
