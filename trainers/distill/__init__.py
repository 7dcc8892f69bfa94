"""Puzzle-style NAS distillation (issue 11): block library, scoring, exact search, FFN Fusion,
knowledge distillation and the DeciLM export.

Small modules, imported lazily by ``thinkforge train distill`` (torch, transformers and
NVIDIA Model Optimizer load only inside the functions that need them):

- ``blocks``: per-layer variants, their costs (parameters, KV bytes/token, CPU time), the
  channel-contribution FFN ranking (modelopt's ``IndependentChannelContributionHook``) and
  the weight slicing that builds a variant's block from the parent's;
- ``scoring``: KL to the parent when one variant alone replaces one block, cached per
  (parent, data fingerprint, calibration, variant);
- ``search``: one variant per layer, minimum summed KL under budgets (modelopt ``run_mip``
  with PuLP/CBC, or ``scipy.optimize.milp``), and a brute force for the tests;
- ``fusion``: FFN Fusion of runs of attention-free blocks;
- ``child``: builds the heterogeneous child (``decilm/``) and saves it with ``block_configs``;
- ``kd``: knowledge distillation through ``modelopt.torch.distill``;
- ``pipeline``: the whole run and ``distill_report.json``.
"""
