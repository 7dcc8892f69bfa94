"""Exact search: one variant per layer, minimum summed one-block KL, under every budget.

Budgets are upper bounds on sums over layers (block parameters, KV bytes per token, measured
block time).  ``solve`` uses NVIDIA Model Optimizer's ``run_mip`` (PuLP + CBC, the Puzzle
MIP) by default and ``scipy.optimize.milp`` (HiGHS) as the alternative; ``brute_force`` tries
every combination and exists for the tests.  An infeasible budget is a ``ConfigError`` that
says the smallest value each budget could reach.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys

from thinkforge.manifests.errors import ConfigError


@contextlib.contextmanager
def _stdout_to_stderr():
    """CBC prints its log on file descriptor 1; stdout is data in thinkforge, so send it to 2."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _check_feasible(options, budgets):
    for name, limit in budgets.items():
        least = sum(min(o["costs"][name] for o in opts) for opts in options)
        if least > limit + 1e-9:
            raise ConfigError(
                f"the {name} budget ({limit:g}) cannot be met: the smallest child "
                f"needs {least:g}",
                hint="raise the budget or allow more variants (attention / FFN removal)")


def solve(options: list[list[dict]], budgets: dict[str, float],
          solver: str = "modelopt") -> list[int]:
    """``options[layer]`` = [{"kl": float, "costs": {budget: float}}...]; returns a choice per layer.

    ``solver``: ``modelopt`` (run_mip, CBC) or ``scipy`` (milp, HiGHS).
    """
    _check_feasible(options, budgets)
    if solver == "scipy":
        return _solve_scipy(options, budgets)
    if solver != "modelopt":
        raise ConfigError(f"unknown solver {solver!r}", hint="use modelopt or scipy")
    from thinkforge.manifests.errors import require

    require("pulp", "distill")
    mip = require("modelopt.torch.puzzletron.mip.mip_with_multi_layer_replacements", "distill")
    replacements = {}
    for layer, opts in enumerate(options):
        for j, o in enumerate(opts):
            replacements[(layer, j)] = {
                "parent_layer_indices": (layer,), "choice": (layer, j),
                "metrics": {"kl": float(o["kl"])},
                "stats": {k: float(v) for k, v in o["costs"].items()}}
    constraints = {f"stats.{k}": float(v) for k, v in budgets.items()}
    with _stdout_to_stderr():
        result = mip.run_mip(replacements, objective="metrics.kl", constraints=constraints,
                             bigger_is_better=False)
    if not result:
        raise ConfigError("no architecture meets every budget together",
                          hint="raise one of the budgets")
    chosen = dict(r["choice"] for r in result[0]["chosen_replacements"])
    return [chosen[layer] for layer in range(len(options))]


def _solve_scipy(options, budgets):
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp

    index = [(layer, j) for layer, opts in enumerate(options) for j in range(len(opts))]
    c = np.array([options[layer][j]["kl"] for layer, j in index], dtype=float)
    rows, lo, hi = [], [], []
    for layer in range(len(options)):
        rows.append([1.0 if lay == layer else 0.0 for lay, _ in index])
        lo.append(1.0)
        hi.append(1.0)
    for name, limit in budgets.items():
        rows.append([float(options[layer][j]["costs"][name]) for layer, j in index])
        lo.append(-np.inf)
        hi.append(float(limit))
    res = milp(c, constraints=LinearConstraint(np.array(rows), lo, hi),
               integrality=np.ones(len(index)), bounds=Bounds(0, 1))
    if res.x is None:
        raise ConfigError("no architecture meets every budget together",
                          hint="raise one of the budgets")
    chosen = {index[k][0]: index[k][1] for k in range(len(index)) if res.x[k] > 0.5}
    return [chosen[layer] for layer in range(len(options))]


def brute_force(options, budgets) -> tuple[list[int], float] | None:
    """Every combination; the best feasible one (and its summed KL), or None."""
    best, best_kl = None, float("inf")
    for combo in itertools.product(*[range(len(o)) for o in options]):
        ok = all(sum(options[layer][j]["costs"][name] for layer, j in enumerate(combo))
                 <= limit + 1e-9 for name, limit in budgets.items())
        if not ok:
            continue
        kl = sum(options[layer][j]["kl"] for layer, j in enumerate(combo))
        if kl < best_kl:
            best, best_kl = list(combo), kl
    return None if best is None else (best, best_kl)
