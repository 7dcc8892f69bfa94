"""Knowledge distillation of the child from the parent with NVIDIA Model Optimizer.

``modelopt.torch.distill.convert`` wraps the child with the parent as teacher; the criterion
is keyed by layer names (a bare loss fails on Hugging Face outputs): ``lm_head`` -> forward
KL on the logits (``LogitsDistillationLoss``, temperature T, per token then averaged) and,
with ``cosine_weight > 0``, ``model.norm`` -> 1 - cosine similarity of the final hidden
states, balanced by ``StaticLossBalancer``.  Plain AdamW on the child's weights; works on
CPU as is.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable


def _cosine_loss_cls():
    import torch
    from modelopt.torch.distill.losses import Loss

    class HiddenCosineLoss(Loss):
        """1 - cosine similarity per token of student and teacher hidden states."""

        def forward(self, out_s, out_t):
            out_s = out_s[0] if isinstance(out_s, tuple) else out_s
            out_t = out_t[0] if isinstance(out_t, tuple) else out_t
            return 1.0 - torch.nn.functional.cosine_similarity(
                out_s.float(), out_t.float().detach(), dim=-1)

    return HiddenCosineLoss


def distill(child, parent, batches, *, steps: int, lr: float, temperature: float = 1.0,
            cosine_weight: float = 0.0, train_embeddings: bool = False,
            log: Callable[[str], None] | None = None, autocast: str | None = None,
            minutes: float | None = None):
    """Train ``child`` for ``steps`` steps (cycling ``batches``), or fewer when ``minutes``
    of wall time have passed (the step running then finishes); returns (child, history).

    The embeddings and LM head are the parent's own and stay frozen unless
    ``train_embeddings``: on a small data version, Adam would otherwise move every vocabulary
    row (the softmax gives each a gradient) and the child drifts from the parent on text it
    did not see; freezing them is also several times faster with a large vocabulary.

    ``autocast`` ("bfloat16" on CUDA): forwards run under torch autocast in that dtype while
    the child's weights and AdamW state stay float32.
    """
    import torch
    from thinkforge.manifests.errors import require

    mtd = require("modelopt.torch.distill", "distill")
    criterion = {("lm_head", "lm_head"): mtd.LogitsDistillationLoss(temperature=temperature,
                                                                     reduction="none")}
    balancer = None
    if cosine_weight > 0:
        criterion[("model.norm", "model.norm")] = _cosine_loss_cls()()
        balancer = mtd.StaticLossBalancer(kd_loss_weight=[1.0 - cosine_weight, cosine_weight])
    parent.eval()
    if not train_embeddings:
        child.get_input_embeddings().weight.requires_grad_(False)
        child.get_output_embeddings().weight.requires_grad_(False)
    student = mtd.convert(child, mode=[("kd_loss", {
        "teacher_model": parent, "criterion": criterion, "loss_balancer": balancer})])
    student.train()
    params = [p for n, p in student.named_parameters()
              if p.requires_grad and not n.startswith("_teacher_model")]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    history = []
    t0 = time.perf_counter()
    device = next(child.parameters()).device
    amp = (torch.autocast(device_type=device.type, dtype=getattr(torch, autocast))
           if autocast else contextlib.nullcontext())
    for step in range(steps):
        ids = batches[step % len(batches)]
        with amp:
            student(input_ids=ids, use_cache=False)
            loss = student.compute_kd_loss(loss_reduction_fn=lambda x: x.mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        history.append({"step": step + 1, "kd_loss": round(float(loss.detach()), 6),
                        "elapsed_s": round(time.perf_counter() - t0, 2)})
        elapsed = time.perf_counter() - t0
        out_of_time = minutes is not None and elapsed >= 60 * minutes and step + 1 < steps
        if log and ((step + 1) % max(1, steps // 10) == 0 or out_of_time):
            eta = elapsed / (step + 1) * (steps - step - 1)
            if minutes is not None:
                eta = min(eta, max(0.0, 60 * minutes - elapsed))
            log(f"KD step {step + 1}/{steps}: loss {float(loss.detach()):.4f} "
                f"({elapsed:.0f} s, ETA {eta:.0f} s)")
        if out_of_time:
            if log:
                log(f"KD: --kd-minutes {minutes:g} reached after {step + 1} of {steps} steps")
            break
    child = mtd.export(student)
    for p in child.parameters():
        p.requires_grad_(True)
    return child.eval(), history
