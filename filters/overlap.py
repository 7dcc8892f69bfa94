"""Work spread over a step's threads: reading ahead (one item, or within a byte budget and
started before the caller needs it), and a function mapped over a pool, results in order.

Used by decontamination's compiled scan (``decontam._row_hits``: pyarrow reads the rows'
texts while numba loads its kernels and the benchmark index is built, both mostly holding
the GIL, which pyarrow's reading does not; then the ``nogil`` kernels run on every thread)
and by the DuckDB batches of dedup and decontamination (``text.prefetched``).  A step with
one DuckDB thread (a single-thread Dask worker) runs neither: a second busy thread would
take a core another worker owns (``read_ahead``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from queue import SimpleQueue
from typing import Any

_END = object()


class ReadAhead:
    """The items of ``items`` made by a background thread that starts at once and stays up to
    ``budget`` bytes (``size(item)``) ahead of the consumer; iterate it once, ``close`` it
    (or use it as a context manager) to stop the thread when the consumer leaves early."""

    def __init__(self, items: Iterable, size: Callable[[Any], int], budget: int):
        self._items, self._size, self._budget = iter(items), size, budget
        self._ready: SimpleQueue = SimpleQueue()
        self._room = threading.Condition()
        self._held = 0  # bytes made and not yet taken
        self._stopped = False
        self._thread = threading.Thread(target=self._make, name="read-ahead", daemon=True)
        self._thread.start()

    def _make(self) -> None:
        try:
            while True:
                with self._room:
                    self._room.wait_for(lambda: self._stopped or self._held < self._budget)
                    if self._stopped:
                        return
                item = next(self._items, _END)
                if item is _END:
                    self._ready.put((_END, 0))
                    return
                n = self._size(item)
                with self._room:
                    self._held += n
                self._ready.put((item, n))
        except BaseException as exc:  # noqa: BLE001 -- raised again in the consumer's thread
            self._ready.put((exc, -1))

    def __iter__(self) -> Iterator:
        while True:
            item, n = self._ready.get()
            if item is _END:
                return
            if n < 0:
                raise item
            with self._room:
                self._held -= n
                self._room.notify()
            yield item

    def close(self) -> None:
        with self._room:
            self._stopped = True
            self._room.notify()
        self._thread.join()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_ahead(items: Iterable, background: bool) -> Iterator:
    """``items``, the next one made in a background thread while the caller works on this
    one (DuckDB and pyarrow release the GIL), or in turn by the caller when not
    ``background``: give it ``not text.single_threaded(con)`` (a single-thread Dask worker
    that ran a second busy thread would take a core another worker owns: two such tasks on
    two cores ran ~1.6x slower than alone)."""
    if not background:
        yield from items
        return
    with ReadAhead(items, size=lambda _: 1, budget=1) as ahead:  # one item ahead
        yield from ahead


def ordered_map(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """``fn(item)`` for each item, computed on ``workers`` threads (``fn`` must release the
    GIL to gain), yielded in the items' order with at most ``workers + 1`` in flight; in the
    caller's thread when ``workers`` <= 1."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="ordered-map") as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:  # the consumer left early: run nothing more
                future.cancel()
