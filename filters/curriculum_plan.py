"""The progressive-batching allocation (Llama-Nemotron report, RL curriculum), in numbers only.

Input: how many rows each pass-rate level holds, easiest level first.  Output: how many rows
of each level go into each batch.  The rows themselves never enter Python: the SQL in
``curriculum.py`` turns this small matrix into batch numbers (so the pool can be larger
than RAM).

The algorithm, for batch ``t`` of ``T = ceil(N / batch_size)``:

1. **Axis.** Levels are laid side by side on the pool's cumulative-row axis [0, 1]: level
   ``l`` covers ``[lo_l, hi_l)``, its share of the pool.  Placing levels by their row share
   (not evenly) makes the centre spend as many batches in a level as the level can fill,
   so no level is passed by while it still has rows.
2. **Centre.** ``p_t = (rows handed out before t + half this batch) / N``; ``linear``
   schedule: centre ``c = p_t``; ``cosine``: ``c = (1 - cos(pi p_t)) / 2`` (lingers at the
   easy and hard ends).  The centre never runs ahead of the easiest level that still has
   rows (clamped to its ``hi``), so stragglers are served before harder rows.
3. **Target.** A Gaussian over levels: weight ``exp(-d^2 / (2 sigma^2))`` with ``d`` the
   distance from the centre to the level's interval (0 inside it).  Targets are rounded
   by largest remainder, **capped by what is left** in each level; capacity freed by a
   cap is offered again to the non-empty levels by the same Gaussian weights.
4. **Leftover.** Capacity still free (the remaining levels are too far for the Gaussian to
   reach) is **filled from the levels with the most rows left**.
5. **Last batch.** When the last batch is partial it holds what is left over, which can be
   a straggler of an easier level that the Gaussian's tail passed by; it swaps such rows
   with the hardest rows of the batch before it, so the curriculum does not end easier.

Default ``sigma = 0.05`` (5% of the pool): batches draw mostly from their own level and
blend with the next one near a boundary.  Measured on 2,000 random pools of 4-9 levels
(each level 1-5 batches of 8-48 rows), linear schedule: Spearman rho of batch mean pass
rate over batch index <= -0.9 for every pool with sigma 0.05 and 0.1 (or batch means that
never rise: a plan ending in many batches of the hardest level ties them, which lowers rho
to ~-0.87 on an ideal trend), and for 98% of them with sigma 0.2 (a Gaussian that wide
blends three levels per batch).
"""

from __future__ import annotations

import math

import numpy as np

SCHEDULES = ("linear", "cosine")


def centre_at(progress: float, schedule: str) -> float:
    if schedule == "linear":
        return progress
    if schedule == "cosine":
        return (1.0 - math.cos(math.pi * progress)) / 2.0
    raise ValueError(f"unknown schedule {schedule!r}; use one of {SCHEDULES}")


def _round_largest_remainder(target: np.ndarray, total: int) -> np.ndarray:
    base = np.floor(target).astype(np.int64)
    short = total - int(base.sum())
    if short > 0:
        order = np.argsort(-(target - base), kind="stable")
        base[order[:short]] += 1
    return base


def plan_batches(level_counts: list[int] | np.ndarray, batch_size: int, sigma: float = 0.05,
                 schedule: str = "linear") -> np.ndarray:
    """Rows per (batch, level): shape ``(T, L)``, rows sum to ``batch_size`` (last may be less)."""
    counts = np.asarray(level_counts, dtype=np.int64)
    if batch_size < 1 or sigma <= 0 or (counts < 0).any():
        raise ValueError("batch_size >= 1, sigma > 0 and non-negative counts are required")
    total = int(counts.sum())
    if total == 0:
        return np.zeros((0, len(counts)), dtype=np.int64)
    hi = np.cumsum(counts) / total
    lo = hi - counts / total
    # the integer bookkeeping in Python ints (numpy calls on a few levels cost ~1 us each, ~700
    # batches for 750k rows); every float step stays the numpy operation it was (same plan)
    hi_list = hi.tolist()
    left = counts.copy()
    remaining = total  # left.sum(): each batch takes exactly its capacity
    n_batches = -(-total // batch_size)
    out = np.zeros((n_batches, len(counts)), dtype=np.int64)
    handed_out = 0
    frontier = 0  # the first level with rows left (a level once empty stays empty)
    for t in range(n_batches):
        capacity = min(batch_size, remaining)
        centre = centre_at((handed_out + capacity / 2) / total, schedule)
        while left[frontier] <= 0:
            frontier += 1
        centre = min(centre, hi_list[frontier])
        distance = np.maximum(0.0, np.maximum(lo - centre, centre - hi))
        weight = np.exp(-0.5 * (distance / sigma) ** 2)
        take = np.zeros_like(left)
        need = capacity
        for _ in range(len(counts)):  # each round fills at least one level or finishes
            room = left - take
            offered = np.where(room > 0, weight, 0.0)
            if need <= 0 or offered.sum() < 1e-12:
                break
            share = _round_largest_remainder(offered / offered.sum() * need, need)
            take += np.minimum(share, room)
            need = capacity - int(take.sum())
        if need > 0:
            room = left - take
            for level in np.argsort(-room, kind="stable").tolist():  # leftover: most rows left first
                if need <= 0:
                    break
                extra = min(need, int(room[level]))
                take[level] += extra
                need -= extra
        out[t] = take
        left -= take
        remaining -= capacity
        handed_out += capacity
    _harden_last(out, batch_size)
    return out


def _harden_last(plan: np.ndarray, batch_size: int) -> None:
    """Swap the partial last batch's easiest rows with the previous batch's hardest ones."""
    if len(plan) < 2 or plan[-1].sum() == batch_size:
        return
    last, previous = plan[-1], plan[-2]  # views: edits land in plan
    while True:
        easiest, hardest = np.flatnonzero(last)[0], np.flatnonzero(previous)[-1]
        if easiest >= hardest:
            return
        last[easiest] -= 1
        previous[easiest] += 1
        previous[hardest] -= 1
        last[hardest] += 1
