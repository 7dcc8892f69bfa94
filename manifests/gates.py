"""Quality gates on published versions that every command applies the same way.

The verified rate of an ``sft`` version is the share of its answers whose verifier said
right, among the answers a verifier could decide (``verified`` not NULL).  Training on
answers nobody checked is how wrong answers reach a model (issue 9: the demo's train split
was 0 % verified and nothing said so), so a version below ``VERIFIED_RATE_WARNING``
(0.2, or ``$THINKFORGE_VERIFIED_RATE_WARNING``) gets a warning that names it: in the
summary line of the command that published it, after each recipe step, and in its report.
An ``sft`` version with no rows is said plainly too.
"""

from __future__ import annotations

from typing import Any

VERIFIED_RATE_WARNING = 0.2
THRESHOLD_ENV = "THINKFORGE_VERIFIED_RATE_WARNING"


def warning_threshold() -> float:
    """0.2, or ``$THINKFORGE_VERIFIED_RATE_WARNING`` (0 turns the warning off)."""
    import os

    text = os.environ.get(THRESHOLD_ENV)
    if not text:
        return VERIFIED_RATE_WARNING
    try:
        return float(text)
    except ValueError:
        from .errors import ConfigError

        raise ConfigError(f"${THRESHOLD_ENV}={text!r} is not a number",
                          hint="a share between 0 and 1, e.g. 0.2 (0 turns the warning off)") from None


def verified_summary(stats: dict[str, Any]) -> dict[str, Any] | None:
    """``{"checked", "verified", "rate", "by_mode"}`` from a version's stats (None: no column)."""
    per_mode = stats.get("verified_rate")
    if not isinstance(per_mode, dict):
        return None
    checked = sum(v.get("checked") or 0 for v in per_mode.values())
    verified = sum(v.get("true") or 0 for v in per_mode.values())
    return {"checked": checked, "verified": verified,
            "rate": verified / checked if checked else None,
            "by_mode": {m: v.get("rate") for m, v in sorted(per_mode.items())}}


def verified_rate_warning(manifest, threshold: float | None = None) -> str | None:
    """The warning for an sft version whose verified rate is below ``threshold``, or None."""
    threshold = warning_threshold() if threshold is None else threshold
    if getattr(manifest, "kind", None) != "sft" or threshold <= 0:  # a train step yields a run
        return None
    if manifest.rows == 0:
        return (f"{manifest.ref} holds no rows: nothing to train on "
                f"({manifest.rejected.rows} rejected: {dict(manifest.rejected.by_reason)})")
    summary = verified_summary(manifest.stats or {})
    if summary is None or summary["rate"] is None or summary["rate"] >= threshold:
        return None
    modes = ", ".join(f"{m} {r:.0%}" for m, r in summary["by_mode"].items() if r is not None)
    return (f"{manifest.ref}: verified rate {summary['rate']:.0%} ({summary['verified']} of "
            f"{summary['checked']} checked answers; {modes}) is below {threshold:.0%}; keep "
            "only verified answers with `thinkforge filter correct`, or use a stronger teacher")


def verified_phrase(manifest) -> str:
    """'verified 42% (5/12)' for a summary line; '' when the version has no verified column."""
    is_sft = getattr(manifest, "kind", None) == "sft"  # a train step yields a run, not a version
    summary = verified_summary(manifest.stats or {}) if is_sft else None
    if summary is None or summary["rate"] is None:
        return ""
    return f"verified {summary['rate']:.0%} ({summary['verified']}/{summary['checked']})"
