import pytest
from thinkforge.filters.passrate import PassRateConfig, run_passrate
from thinkforge.manifests.errors import InputDataError
from thinkforge.manifests.selection import read_rejected, read_table

from .conftest import prompt_ids, write_rollouts


def test_pass_rate_buckets_prefilter_and_rejections(store, gsm8k):
    ids = prompt_ids(store, gsm8k)
    wanted = {ids[0]: 8, ids[1]: 6, ids[2]: 5, ids[3]: 1, ids[4]: 0, ids[5]: 2}
    r = write_rollouts(store, gsm8k, wanted, extra_ids=["ghost"])
    m = run_passrate(store, r, None, "pool")
    rows = {row["id"]: row for row in read_table(store, m).to_pylist()}
    assert set(rows) == {ids[2], ids[3], ids[4], ids[5]}
    assert rows[ids[2]]["pass_rate"] == 5 / 8 and rows[ids[2]]["bucket"] == "0.50-0.75"
    assert (rows[ids[3]]["n_samples"], rows[ids[3]]["n_correct"]) == (8, 1)
    assert rows[ids[3]]["bucket"] == "0.00-0.25" and rows[ids[5]]["bucket"] == "0.25-0.50"
    assert rows[ids[4]]["bucket"] == "unsolved"  # kept unless asked
    rejected = read_rejected(store, m).to_pylist()
    reasons = {row["id"]: row["reason"] for row in rejected}
    assert reasons[ids[0]] == reasons[ids[1]] == "too_easy"  # 1.0 and 0.75: at or above
    assert reasons["ghost"] == "unknown_prompt"
    # prompts the rollouts never asked for are not_sampled: not rejections, but counted
    assert "no_rollouts" not in reasons.values()
    assert m.rejected.by_reason == {"too_easy": 2, "unknown_prompt": 1}
    assert m.provenance["not_sampled"] == len(ids) - 6
    assert m.rows + m.rejected.rows + m.provenance["not_sampled"] == len(ids) + 1  # all accounted


def test_provenance_and_lineage(store, gsm8k):
    r = write_rollouts(store, gsm8k, {pid: 3 for pid in prompt_ids(store, gsm8k)[:10]})
    m = run_passrate(store, r, gsm8k, "pool")
    prov = m.provenance
    assert (prov["policy_models"], prov["K"], prov["verifier"], prov["verifier_version"],
            prov["seed"], prov["rollouts"]) == ("policy-a", 8, "math-verify", "0.7", 7, r.ref)
    assert [p.fingerprint for p in m.parents] == [r.fingerprint, gsm8k.fingerprint]
    assert m.step.type == "filter.passrate" and m.step.config["drop_at_or_above"] == 0.75
    assert m.stats["by_bucket"] == {"0.25-0.50": 10}


def test_provenance_tolerates_absent_generator_facts(store, gsm8k):
    r = write_rollouts(store, gsm8k, {pid: 3 for pid in prompt_ids(store, gsm8k)[:4]},
                       provenance={})
    m = run_passrate(store, r, None, "pool")
    assert m.provenance["K"] == 8 and m.provenance["policy_models"] == ["policy-a"]
    assert m.provenance["verifier"] is None


def test_provenance_in_the_generators_shape(store, gsm8k):
    """generators/ put K and the seed in the step config, teachers and verifiers in provenance."""
    r = write_rollouts(store, gsm8k, {pid: 1 for pid in prompt_ids(store, gsm8k)[:4]}, k=4,
                       provenance={"teachers": {"SmolLM2-135M": {"model": "SmolLM2-135M"}},
                                   "verifiers": {"math": "math-verify 0.7.0"}},
                       step_config={"k": 4, "seed": 11})
    prov = run_passrate(store, r, None, "pool").provenance
    assert (prov["K"], prov["seed"], prov["policy_models"], prov["verifier"],
            prov["verifier_version"]) == (4, 11, ["SmolLM2-135M"], ["math"],
                                          {"math": "math-verify 0.7.0"})


def test_unchanged_step_is_reused_and_changed_one_is_not(store, random_rollouts):
    first = run_passrate(store, random_rollouts, None, "pool")
    again = run_passrate(store, random_rollouts, None, "pool")
    assert again.version == first.version == "v1"
    other = run_passrate(store, random_rollouts, None, "pool", PassRateConfig(drop_unsolved=True))
    assert other.version == "v2" and other.rejected.by_reason.get("unsolved", 0) > 0


def test_drop_unsolved_unverified_and_custom_buckets(store, gsm8k):
    ids = prompt_ids(store, gsm8k)[:4]
    r = write_rollouts(store, gsm8k, {ids[0]: 0, ids[1]: 4, ids[2]: 8, ids[3]: 2},
                       correct_none={ids[3]})
    cfg = PassRateConfig(drop_unsolved=True, drop_at_or_above=None, buckets=[0, 0.5, 1],
                         label_unsolved=False)
    m = run_passrate(store, r, None, "pool", cfg)
    rows = {row["id"]: row["bucket"] for row in read_table(store, m).to_pylist()}
    assert rows == {ids[1]: "0.50-1.00", ids[2]: "0.50-1.00"}  # 1.0 falls in the closed last bucket
    assert m.rejected.by_reason["unsolved"] == 1 and m.rejected.by_reason["unverified"] == 1


def test_bad_config_and_wrong_kind(store, gsm8k, random_rollouts):
    with pytest.raises(ValueError):
        PassRateConfig(buckets=[0, 0.6, 0.5, 1])
    with pytest.raises(ValueError):
        PassRateConfig(drop_at_or_abve=0.5)  # unknown keys are errors
    with pytest.raises(InputDataError):
        run_passrate(store, gsm8k, None, "pool")


def test_limit_is_not_sampled_and_failed_requests_are_no_rollouts(store, gsm8k, monkeypatch):
    """Issue 9 item 5: `--limit` leaves prompts not_sampled (not rejected); a prompt whose every
    request failed is no_rollouts."""
    import thinkforge.generators.engine as engine
    from thinkforge.generators.backends import Completion
    from thinkforge.generators.rollouts import RolloutConfig, generate_rollouts

    ids = prompt_ids(store, gsm8k)
    config = RolloutConfig(k=2, limit=4)
    selected = engine.load_prompts(store, gsm8k, config.limit)
    dead_keys = {p.key for p in engine.plan_requests(selected[:1], config, ["on"], 2)}

    class HalfDead:
        identity, preferred_batch_size = {"backend": "test"}, 8

        def generate(self, requests):
            return [Completion(r.key, "", finish_reason="error", error_kind="connection",
                               error="refused") if r.key in dead_keys
                    else Completion(r.key, "x\n\nFinal answer: 1", 5, 5) for r in requests]

        def close(self):
            pass

    monkeypatch.setattr(engine, "make_backend", lambda config, model: HalfDead())
    rollouts = generate_rollouts(store, gsm8k, "r", config, progress=False)
    assert rollouts.rejected.rows == 2
    m = run_passrate(store, rollouts, None, "pool", PassRateConfig(drop_at_or_above=None))
    assert m.rejected.by_reason == {"no_rollouts": 1}
    assert m.rows == 3 and m.provenance["not_sampled"] == len(ids) - 4
