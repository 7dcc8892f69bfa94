"""The import's duplicate-key check: keys seen so far as sorted runs of 64-bit hashes."""

from __future__ import annotations

import numpy as np


class KeyIndex:
    """Keys seen so far as sorted runs of 64-bit hashes (with the first row's number)."""

    def __init__(self):
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, hashes: np.ndarray, numbers: np.ndarray) -> list[int | None]:
        """For each row, the number of the earlier row with the same key, or None."""
        if not len(hashes):
            return []
        h = np.asarray(hashes, dtype=np.int64)
        numbers = np.asarray(numbers)
        num = numbers.astype(np.uint32 if numbers.max() < 1 << 32 else np.int64)  # 4 bytes a row
        first_of: list[int | None] = [None] * len(hashes)
        uniq, first_idx, inverse = np.unique(h, return_index=True, return_inverse=True)
        earlier = num[first_idx]  # the first row of each key within the batch
        found = np.zeros(len(uniq), dtype=bool)
        for keys, nums in self.runs:
            pos = np.searchsorted(keys, uniq)
            pos[pos >= len(keys)] = 0
            hit = (keys[pos] == uniq) & ~found
            earlier[hit] = nums[pos[hit]]
            found |= hit
        inverse = inverse.reshape(-1)
        dup = found[inverse] | (first_idx[inverse] != np.arange(len(h)))
        for i in np.flatnonzero(dup).tolist():
            first_of[i] = int(earlier[inverse[i]])
        new = ~found
        self._push(uniq[new], earlier[new])
        return first_of

    def _push(self, keys: np.ndarray, nums: np.ndarray) -> None:
        self.runs.append((keys, nums))
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            (k1, n1), (k2, n2) = self.runs.pop(-2), self.runs.pop()
            # merge two sorted runs by position (no argsort: ~8 bytes a row of the newer run
            # on top of the result); the keys of the two runs are distinct
            at = np.searchsorted(k1, k2) + np.arange(len(k2))
            keys = np.empty(len(k1) + len(k2), dtype=k1.dtype)
            nums = np.empty(len(keys), dtype=np.promote_types(n1.dtype, n2.dtype))
            old = np.ones(len(keys), dtype=bool)
            old[at] = False
            keys[at], nums[at] = k2, n2
            keys[old], nums[old] = k1, n1
            del k1, n1, k2, n2, old, at
            self.runs.append((keys, nums))
