"""Recipe steps are the registered step descriptors (``thinkforge.manifests.steps``): a recipe's
``type:`` is a descriptor's type string, its ``config:`` the descriptor's config model, its
``inputs:`` the descriptor's roles.  ``--dry-run`` and reuse use ``thinkforge.manifests.steps``'
``predict_reuse``, the same function a run uses to decide whether anything runs.
"""

from __future__ import annotations

from thinkforge.manifests.steps import Inputs, RunContext, StepDescriptor, load_steps, predict_reuse

BuildContext = RunContext  # the name recipes used before the registry


def step_types() -> dict[str, StepDescriptor]:
    """Every step a recipe may use (the builtin ones plus any registered since)."""
    return {t: d for t, d in load_steps().items() if t != "import"}


__all__ = ["BuildContext", "Inputs", "StepDescriptor", "predict_reuse", "step_types"]
