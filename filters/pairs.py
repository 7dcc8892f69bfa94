"""The ON/OFF pair policy shared by every step that drops rows of ``sft`` versions.

An ``sft`` version holds, per prompt and sample, one reasoning ON and one OFF answer with
the same ``pair_id`` (docs/concepts.md).  A filter that judges rows one at a time leaves orphans
(an ON answer whose OFF twin was dropped); Llama-Nemotron trains on both modes of the same
prompt, so by default a pair is kept or dropped as a whole.

Policies (``--pairs``):

``drop-whole``   a pair is kept only if every row of it passes; a row that passed but
                 whose partner failed is rejected with reason
                 ``pair_partner:<partner mode>:<partner's reason>`` and ``pair_failed_id``
                 naming the row that failed.  Default for paired versions.
``keep-whole``   a pair is kept whole when at least one row passes (the failing row is kept
                 too; ``provenance.pairs.kept_despite_failing`` counts them); a pair where
                 every row fails is rejected.
``independent``  every row on its own (orphans possible).  Default for unpaired versions.

Rows that were already orphans in the input (their partner was never generated or was
dropped by an earlier step) are judged on their own under every policy.

API for a filter (``thinkforge.filters.quality``, ``thinkforge.filters.dedup``, and ``filter correct``):

* :func:`resolve_policy` -> the policy to apply (``None`` in the config = the default);
* :func:`apply_pair_policy` -> SQL over a relation that has every column plus ``reason``
  (NULL = passes), returning the same columns plus the final ``reason`` and
  ``pair_failed_id``;
* :func:`pair_facts` -> counts for the provenance.

Both ``copy_kept`` (``WHERE reason IS NULL``) and ``copy_rejected`` read the returned SQL.
"""

from __future__ import annotations

from typing import Any, Literal

PairPolicy = Literal["keep-whole", "drop-whole", "independent"]
PAIR_POLICIES: tuple[str, ...] = ("keep-whole", "drop-whole", "independent")
PAIRS_FIELD_HELP = ("how ON/OFF pairs of sft versions are judged: drop-whole (a pair is kept "
                    "only if both rows pass), keep-whole (kept whole if one passes), "
                    "independent (row by row); default: drop-whole for paired versions")


def is_paired(columns: list[str]) -> bool:
    """Rows of this kind carry a ``pair_id`` (sft)."""
    return "pair_id" in columns


def resolve_policy(policy: str | None, columns: list[str]) -> str:
    """The policy a step applies: the configured one, else drop-whole for paired kinds."""
    if not is_paired(columns):
        return "independent"
    return policy or "drop-whole"


def apply_pair_policy(judged: str, columns: list[str], policy: str,
                      carry: tuple[str, ...] = ()) -> str:
    """SQL: ``judged`` (every column + ``reason``) with the pair policy applied.

    Returns ``SELECT <columns>, <carry>, reason, pair_failed_id`` where ``reason`` is final
    (``carry``: the step's own extra columns for rejected rows, e.g. ``duplicate_of``).
    ``judged`` is a relation name or a parenthesised subquery.
    """
    cols = ", ".join([*columns, *carry])
    if policy == "independent" or not is_paired(columns):
        return f"SELECT {cols}, reason, NULL::VARCHAR AS pair_failed_id FROM {judged}"
    window = "OVER (PARTITION BY pair_id)"
    # the first failing row of the pair (by mode, then id): named in its partner's reason
    failed = (f"min(CASE WHEN reason IS NOT NULL THEN reasoning || chr(31) || reason || chr(31) "
              f"|| id END) {window}")
    if policy == "drop-whole":
        final = ("CASE WHEN reason IS NOT NULL THEN reason WHEN pair_failed > 0 THEN "
                 "'pair_partner:' || split_part(first_failed, chr(31), 1) || ':' || "
                 "split_part(first_failed, chr(31), 2) END")
        failed_id = ("CASE WHEN reason IS NULL AND pair_failed > 0 THEN "
                     "split_part(first_failed, chr(31), 3) END")
    elif policy == "keep-whole":
        final = "CASE WHEN reason IS NOT NULL AND pair_failed < pair_rows THEN NULL ELSE reason END"
        failed_id = "NULL::VARCHAR"
    else:
        raise ValueError(f"unknown pair policy {policy!r}; use one of {PAIR_POLICIES}")
    return (f"SELECT {cols}, {final} AS reason, {failed_id} AS pair_failed_id FROM ("
            f"SELECT *, count(*) {window} AS pair_rows, count(reason) {window} AS pair_failed, "
            f"{failed} AS first_failed FROM {judged})")


def pair_facts(con, judged: str, final: str, columns: list[str], policy: str) -> dict[str, Any]:
    """Provenance: the policy, complete pairs and orphans kept, and what the policy changed."""
    if not is_paired(columns):
        return {}
    kept = con.execute(
        f"SELECT count(*) FILTER (WHERE n = 2), count(*) FILTER (WHERE n = 1) FROM ("
        f"SELECT pair_id, count(*) AS n FROM ({final}) WHERE reason IS NULL GROUP BY pair_id)"
    ).fetchall()[0]
    partner, despite = con.execute(
        f"SELECT count(*) FILTER (WHERE f.reason LIKE 'pair_partner:%' AND j.reason IS NULL), "
        f"count(*) FILTER (WHERE f.reason IS NULL AND j.reason IS NOT NULL) "
        f"FROM ({final}) f JOIN {judged} j USING (id)").fetchall()[0]
    return {"pairs": {"policy": policy, "complete_pairs_kept": kept[0], "orphans_kept": kept[1],
                      "rejected_for_partner": partner, "kept_despite_failing": despite}}
