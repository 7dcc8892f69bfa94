"""Block scoring: batched variants, shared attention outputs and early stopping give the same
one-block KL as replacing the block in a whole child and comparing it with the parent."""

from __future__ import annotations

import pytest


def _setup(loaded_parent, demo_texts, seq_len=32, tokens=256):
    from thinkforge.trainers.distill import blocks as B
    from thinkforge.trainers.distill.texts import token_batches

    tokenizer, parent = loaded_parent
    shape = B.Shape.of(parent.config)
    batches = token_batches(demo_texts, tokenizer, tokens=tokens, seq_len=seq_len, batch_size=4)
    scores = B.ffn_channel_scores(parent, batches)
    return B, parent, shape, batches, scores


def test_batched_scores_equal_one_block_replaced_in_a_whole_child(loaded_parent, demo_texts):
    from thinkforge.trainers.distill.child import build_child
    from thinkforge.trainers.distill.scoring import model_kl, score_library

    B, parent, shape, batches, channel = _setup(loaded_parent, demo_texts)
    variants = B.library(shape, align=1)
    stats: dict = {}
    kls = score_library(parent, shape, variants, batches, channel, tolerance=0.0, stats=stats)
    others = [v for v in variants if v != shape.parent_variant]
    # 8 sequences: a first round of 2 (min_sequences), then 6 rounds of 1
    assert stats["variant_evaluations"] == shape.layers * len(others) * 7
    assert stats["tokens_scored"] == shape.layers * len(others) * 8 * 32
    assert stats["stopped_early"] == 0
    for layer in (0, shape.layers - 1):
        for v in (others[0], others[len(others) // 2], others[-1]):
            chosen = [shape.parent_variant] * shape.layers
            chosen[layer] = v
            child, _, _ = build_child(parent, shape, chosen, channel)
            direct = model_kl(parent, child, batches)
            assert kls[layer][v.key] == pytest.approx(direct, rel=1e-4, abs=1e-6), (layer, v)
    assert all(kls[i][shape.parent_variant.key] == 0.0 for i in range(shape.layers))


def test_stable_estimates_stop_early_and_max_tokens_caps(loaded_parent, demo_texts):
    from thinkforge.trainers.distill.scoring import score_library

    B, parent, shape, batches, channel = _setup(loaded_parent, demo_texts)
    variants = B.library(shape, align=1)
    per_layer = len(variants) - 1
    full: dict = {}
    exact = score_library(parent, shape, variants, batches, channel, stats=full)
    loose: dict = {}
    quick = score_library(parent, shape, variants, batches, channel, tolerance=10.0,
                          min_sequences=2, stats=loose)
    # a tolerance of 10x the mean is met as soon as there are 2 sequences to compare
    assert loose["variant_evaluations"] == shape.layers * per_layer
    assert loose["tokens_scored"] == shape.layers * per_layer * 2 * 32
    assert loose["stopped_early"] == shape.layers * per_layer
    assert loose["tokens_scored"] < full["tokens_scored"] / 3
    worst = max(exact[i][k] for i in exact for k in exact[i])
    assert any(quick[i][k] != exact[i][k] for i in exact for k in exact[i] if exact[i][k])
    assert max(abs(quick[i][k] - exact[i][k]) for i in exact for k in exact[i]) < worst
    capped: dict = {}
    score_library(parent, shape, variants, batches, channel, max_tokens=96, stats=capped)
    assert capped["tokens_scored"] == shape.layers * per_layer * 96
    one: dict = {}       # a cap of one sequence scores it whole (nothing to compare)
    score_library(parent, shape, variants, batches, channel, max_tokens=32, tolerance=0.1,
                  stats=one)
    assert one["tokens_scored"] == shape.layers * per_layer * 32 and one["stopped_early"] == 0


def test_progress_reports_an_eta_per_layer(loaded_parent, demo_texts):
    from thinkforge.trainers.distill.scoring import score_library

    B, parent, shape, batches, channel = _setup(loaded_parent, demo_texts, tokens=64)
    lines: list[str] = []
    score_library(parent, shape, B.library(shape, align=1), batches, channel,
                  progress=lines.append)
    assert len(lines) == shape.layers
    assert all(f"scored layer {i + 1}/{shape.layers} (" in line and "ETA" in line
               for i, line in enumerate(lines))
    assert lines[-1].endswith("ETA 0 s)")


def test_strided_scores_are_the_kl_on_those_positions(loaded_parent, demo_texts):
    import torch
    from thinkforge.trainers.distill.child import build_child
    from thinkforge.trainers.distill.scoring import score_library

    B, parent, shape, batches, channel = _setup(loaded_parent, demo_texts, tokens=128)
    variants = B.library(shape, align=1)
    stats: dict = {}
    kls = score_library(parent, shape, variants, batches, channel, stride=3, stats=stats)
    assert stats["positions_scored"] * 3 >= stats["tokens_scored"] > stats["positions_scored"]
    v, layer = variants[-1], 1
    chosen = [shape.parent_variant] * shape.layers
    chosen[layer] = v
    child, _, _ = build_child(parent, shape, chosen, channel)
    with torch.no_grad():
        ids = torch.cat(batches)
        p = torch.log_softmax(parent(input_ids=ids).logits[:, ::3].float(), -1)
        q = torch.log_softmax(child(input_ids=ids).logits[:, ::3].float(), -1)
        direct = float((p.exp() * (p - q)).sum(-1).mean())
    assert kls[layer][v.key] == pytest.approx(direct, rel=1e-4, abs=1e-6)


def test_the_channel_ranking_pass_feeds_scoring(loaded_parent, demo_texts):
    from thinkforge.trainers.distill.scoring import ParentStates, score_library, scored_sequences

    B, parent, shape, batches, _ = _setup(loaded_parent, demo_texts)
    states = ParentStates(scored_sequences(batches, 96))
    channel = B.ffn_channel_scores(parent, batches, on_output=states)
    assert states.seen == 3 and len(states.states()) == shape.layers
    variants = B.library(shape, align=1)
    reused = score_library(parent, shape, variants, batches, channel, max_tokens=96,
                           parent_states=states)
    fresh = score_library(parent, shape, variants, batches, channel, max_tokens=96)
    assert reused == fresh
