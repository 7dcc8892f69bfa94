"""Model-side distillation pieces on a tiny 4-layer Llama: fusion, search, export, KD, budgets."""

from __future__ import annotations

import json
import random

import pytest
from thinkforge.manifests.errors import ConfigError

torch = pytest.importorskip("torch")


def _rmsnorm_no_weight(x, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def test_fused_ffn_equals_sum_of_separate_ffns(loaded_parent):
    from thinkforge.trainers.distill import blocks as B
    from thinkforge.trainers.distill.fusion import fused_block

    _, parent = loaded_parent
    shape = B.Shape.of(parent.config)
    variants = [B.Variant(0, 128), B.Variant(0, 64), B.Variant(0, 32)]
    blocks = [B.make_block(parent.model.layers[i], parent.config, shape, v).eval()
              for i, v in enumerate(variants)]
    fused, width = fused_block(blocks, parent.config, shape)
    assert width == 128 + 64 + 32
    torch.manual_seed(1)
    x = torch.randn(2, 7, shape.hidden)
    with torch.no_grad():
        separate = sum(b.mlp(b.post_attention_layernorm(x)) for b in blocks)
        together = fused.mlp(_rmsnorm_no_weight(x, parent.config.rms_norm_eps))
        layer_out = fused(x)
    torch.testing.assert_close(together, separate, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer_out, x + separate, rtol=1e-5, atol=1e-6)
    assert torch.all(fused.post_attention_layernorm.weight == 1)


def _random_options(rng, layers=4, per_layer=12):
    options = []
    for _ in range(layers):
        opts = [{"kl": 0.0, "costs": {"params": 100.0, "kv": 8.0}}]
        for _ in range(per_layer - 1):
            opts.append({"kl": rng.random(), "costs": {"params": float(rng.randint(0, 100)),
                                                       "kv": float(rng.choice([0, 4, 8]))}})
        options.append(opts)
    return options


@pytest.mark.parametrize("solver", ["modelopt", "scipy"])
def test_search_equals_brute_force(solver):
    from thinkforge.trainers.distill.search import brute_force, solve

    rng = random.Random(7)
    for trial in range(4):
        options = _random_options(rng)
        budgets = {"params": rng.choice([120.0, 200.0, 300.0]), "kv": rng.choice([8.0, 16.0, 32.0])}
        best = brute_force(options, budgets)
        choice = solve(options, budgets, solver)
        got = sum(options[i][j]["kl"] for i, j in enumerate(choice))
        for key, limit in budgets.items():
            assert sum(options[i][j]["costs"][key] for i, j in enumerate(choice)) <= limit + 1e-9
        assert got == pytest.approx(best[1], abs=1e-9), (trial, choice, best)


def test_search_on_the_tiny_model_matches_brute_force(loaded_parent):
    """Real costs of the tiny parent's library (synthetic KL), both solvers."""
    from thinkforge.trainers.distill import blocks as B
    from thinkforge.trainers.distill.search import brute_force, solve

    _, parent = loaded_parent
    shape = B.Shape.of(parent.config)
    variants = B.library(shape)
    rng = random.Random(3)
    options = [[{"kl": 0.0 if v == shape.parent_variant else rng.random(),
                 "costs": {"params": B.block_params(shape, v),
                           "kv": B.kv_bytes_per_token(shape, v)}} for v in variants]
               for _ in range(shape.layers)]
    full = shape.layers * B.block_params(shape, shape.parent_variant)
    budgets = {"params": 0.5 * full, "kv": 0.5 * shape.layers * 2 * shape.kv_heads
               * shape.head_dim * 2}
    best = brute_force(options, budgets)
    for solver in ("modelopt", "scipy"):
        choice = solve(options, budgets, solver)
        assert sum(options[i][j]["kl"] for i, j in enumerate(choice)) == pytest.approx(best[1])


def test_impossible_budget_says_what_is_reachable():
    from thinkforge.trainers.distill.search import solve

    options = [[{"kl": 0.0, "costs": {"params": 10.0}}, {"kl": 1.0, "costs": {"params": 5.0}}]] * 2
    with pytest.raises(ConfigError, match="smallest child needs 10"):
        solve(options, {"params": 8.0})


def test_ffn_mult_maps_back_to_the_width_under_the_decilm_rule():
    from thinkforge.trainers.distill.blocks import ffn_mult, ffn_widths
    from thinkforge.trainers.distill.decilm.configuration_decilm import (
        ffn_mult_to_intermediate_size,
    )

    widths = ffn_widths(1536)  # SmolLM2-135M: multiples of 256, so vLLM can load them
    assert widths == [1536, 1280, 768, 512]
    for w in widths:
        assert ffn_mult_to_intermediate_size(ffn_mult(w, 576), 576) == w
    assert ffn_widths(128) == [128, 96, 64, 32]


def test_first_layer_keeps_attention_so_vllm_loads_the_child():
    from thinkforge.trainers.distill.blocks import Variant as V  # noqa: N817
    from thinkforge.trainers.distill.blocks import allowed, vllm_loadable

    assert not allowed(0, V(0, 512)) and allowed(0, V(1, 0)) and allowed(1, V(0, 512))
    assert vllm_loadable(None, [V(2, 512), V(0, 256), V(0, 0), V(1, 0)])
    assert not vllm_loadable(None, [V(0, 512), V(2, 256)])   # vLLM's residual starts in layer 0
    assert not vllm_loadable(None, [V(2, 96)])               # ffn_mult rounds up to 256


def test_channel_ranking_keeps_the_strongest_channels(loaded_parent):
    from thinkforge.trainers.distill import blocks as B

    _, parent = loaded_parent
    shape = B.Shape.of(parent.config)
    scores = torch.arange(shape.intermediate, dtype=torch.float32)  # last channels strongest
    block = B.make_block(parent.model.layers[0], parent.config, shape, B.Variant(1, 32), scores)
    src = parent.model.layers[0]
    assert torch.equal(block.mlp.down_proj.weight, src.mlp.down_proj.weight[:, -32:])
    k = src.self_attn.k_proj.weight.view(2, shape.head_dim, shape.hidden).mean(0)
    assert torch.allclose(block.self_attn.k_proj.weight, k)


def test_child_saves_as_decilm_and_reloads_with_identical_logits(loaded_parent, tmp_path):
    from thinkforge.trainers.distill import blocks as B
    from thinkforge.trainers.distill.child import build_child, load_child, save_child

    tokenizer, parent = loaded_parent
    shape = B.Shape.of(parent.config)
    variants = [B.Variant(1, 96), B.Variant(0, 64), B.Variant(0, 32), B.Variant(2, 0)]
    child, _configs, layer_map = build_child(parent, shape, variants, fuse=[[1, 2]])
    assert layer_map == [[0], [1, 2], [3]]
    out = save_child(child, tmp_path / "child", tokenizer)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["DeciLMForCausalLM"]
    assert config["model_type"] == "nemotron-nas"
    assert config["rope_theta"] == parent.config.rope_parameters["rope_theta"]
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_decilm.DeciLMForCausalLM"
    blocks = config["block_configs"]
    assert [b["attention"]["no_op"] for b in blocks] == [False, True, False]
    assert blocks[0]["attention"]["n_heads_in_group"] == 4
    assert [b["ffn"]["no_op"] for b in blocks] == [False, False, True]
    assert blocks[1]["ffn"]["intermediate_size"] == 96 and blocks[1]["ffn"]["ffn_mult"] > 0
    reloaded = load_child(out)
    ids = torch.randint(0, 1000, (2, 12))
    with torch.no_grad():
        assert torch.equal(child(input_ids=ids).logits, reloaded(input_ids=ids).logits)
    assert sum(p.numel() for p in reloaded.parameters()) < sum(p.numel() for p in parent.parameters())
    cached = reloaded.generate(ids[:1], max_new_tokens=5, do_sample=False)
    plain = reloaded.generate(ids[:1], max_new_tokens=5, do_sample=False, use_cache=False)
    assert torch.equal(cached, plain)


@pytest.mark.slow  # the CLI test checks it on held-back text in the default run
def test_knowledge_distillation_lowers_kl(loaded_parent, demo_texts):
    from thinkforge.trainers.distill import blocks as B
    from thinkforge.trainers.distill.child import build_child
    from thinkforge.trainers.distill.kd import distill
    from thinkforge.trainers.distill.scoring import model_kl
    from thinkforge.trainers.distill.texts import token_batches

    tokenizer, parent = loaded_parent
    shape = B.Shape.of(parent.config)
    batches = token_batches(demo_texts, tokenizer, tokens=256, seq_len=32, batch_size=4)
    child, _, _ = build_child(parent, shape, [B.Variant(1, 32)] * shape.layers)
    before = model_kl(parent, child, batches)
    child, history = distill(child, parent, batches, steps=6, lr=3e-3)
    after = model_kl(parent, child, batches)
    assert len(history) == 6 and all(h["kd_loss"] == h["kd_loss"] for h in history)
    assert after < before


def test_score_cache_is_reused(tmp_path):
    from thinkforge.trainers.distill.blocks import Variant
    from thinkforge.trainers.distill.scoring import ScoreCache

    key = {"parent_sha256": "a", "data": "fp", "calibration": {"tokens": 1}}
    path = ScoreCache.file_for(tmp_path, key)
    ScoreCache(path, key).put_layer(0, {"kv1/ffn32": 0.5})
    assert ScoreCache(path, key).get(0, Variant(1, 32)) == 0.5
    other = dict(key, data="other")
    assert ScoreCache(ScoreCache.file_for(tmp_path, other), other).get(0, Variant(1, 32)) is None


def test_kd_with_cosine_on_hidden_states_trains(loaded_parent):
    from thinkforge.trainers.distill import blocks as B
    from thinkforge.trainers.distill.child import build_child
    from thinkforge.trainers.distill.kd import distill
    from thinkforge.trainers.distill.texts import token_batches

    tokenizer, parent = loaded_parent
    batches = token_batches(["a short text to distil on"] * 8, tokenizer, tokens=64, seq_len=16,
                            batch_size=2)
    child, _, _ = build_child(parent, B.Shape.of(parent.config), [B.Variant(1, 32)] * 4)
    frozen = child.get_input_embeddings().weight.clone()
    before = child.model.layers[0].mlp.down_proj.weight.clone()
    child, history = distill(child, parent, batches, steps=2, lr=1e-3, cosine_weight=0.3)
    assert [h["step"] for h in history] == [1, 2]
    assert all(h["kd_loss"] > 0 for h in history)
    assert not torch.equal(before, child.model.layers[0].mlp.down_proj.weight)
    assert torch.equal(frozen, child.get_input_embeddings().weight)  # embeddings stay the parent's


def test_kd_minutes_caps_the_steps(loaded_parent):
    from thinkforge.trainers.distill import blocks as B
    from thinkforge.trainers.distill.child import build_child
    from thinkforge.trainers.distill.kd import distill
    from thinkforge.trainers.distill.texts import token_batches

    tokenizer, parent = loaded_parent
    batches = token_batches(["a short text to distil on"] * 8, tokenizer, tokens=64, seq_len=16,
                            batch_size=2)
    child, _, _ = build_child(parent, B.Shape.of(parent.config), [B.Variant(1, 32)] * 4)
    lines: list[str] = []
    _, history = distill(child, parent, batches, steps=50, lr=1e-3, minutes=1e-6,
                         log=lines.append)
    assert len(history) == 1
    assert "--kd-minutes" in lines[-1] and "after 1 of 50 steps" in lines[-1]
