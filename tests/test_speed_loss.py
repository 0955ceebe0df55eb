"""The engine's loss path (LM head on trained positions only, metrics on logging steps) against TRL's own."""
from __future__ import annotations

import pytest

from studio.speed.loss import head_loss


def _reference(hidden, weight, labels):
    """Plain full-logits cross-entropy, the textbook definition: sum over trained next tokens / their count."""
    import torch

    logits = hidden[:, :-1] @ weight.t()
    lab = labels[:, 1:]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), lab.reshape(-1),
                                             ignore_index=-100, reduction="sum") / (lab != -100).sum()


class _Toy:
    """The attributes head_loss reads from a causal LM: ``base_model`` (hidden states) and the output head."""

    def __init__(self, hidden, head):
        import torch

        self.hidden, self.head = hidden, head
        toy = self

        class Backbone(torch.nn.Module):
            def forward(self, **kwargs):
                return type("Out", (), {"last_hidden_state": toy.hidden})

        self.base_model = Backbone()

    def get_output_embeddings(self):
        return self.head


@pytest.mark.parametrize("keep", [True, False])
def test_head_loss_equals_cross_entropy_and_its_gradient(monkeypatch, keep):
    import torch

    from studio.speed import loss as mod

    torch.manual_seed(0)
    if not keep:  # force the chunked recompute path
        monkeypatch.setattr(mod, "KEEP_LOGITS", 1)
        monkeypatch.setattr(mod, "CHUNK", 3 * 50)
    hidden = torch.randn(2, 9, 16, requires_grad=True)
    head = torch.nn.Linear(16, 50, bias=False)
    labels = torch.randint(0, 50, (2, 9))
    with torch.no_grad():  # every other next token is the model's top-1, so the accuracy count is not zero
        labels[:, 1::2] = (hidden[:, :-1] @ head.weight.t()).argmax(-1)[:, ::2]
    labels[0, :4] = -100
    labels[1, 7:] = -100
    loss, stats = head_loss(_Toy(hidden, head), {"input_ids": labels.clamp(min=0), "labels": labels}, metrics=True)
    ref = _reference(hidden, head.weight, labels)
    assert abs(loss.item() - ref.item()) < 1e-5
    (g,) = torch.autograd.grad(loss, hidden)
    (g_ref,) = torch.autograd.grad(ref, hidden)
    assert torch.allclose(g, g_ref, atol=1e-6)
    logits = (hidden[:, :-1] @ head.weight.t()).detach()
    mask = labels[:, 1:] != -100
    p = logits.softmax(-1)
    entropy = -(p * p.log()).sum(-1)[mask].sum()
    assert stats["num_valid"] == mask.sum()
    assert abs(stats["entropy_sum"].item() - entropy.item()) < 1e-4
    correct = (logits.argmax(-1) == labels[:, 1:])[mask].sum()
    assert correct > 0 and stats["num_correct"] == correct


def test_num_items_in_batch_divides_the_summed_loss():
    import torch

    hidden = torch.randn(1, 5, 8)
    head = torch.nn.Linear(8, 11, bias=False)
    labels = torch.tensor([[1, 2, 3, 4, 5]])
    one, _ = head_loss(_Toy(hidden, head), {"labels": labels})
    ten, stats = head_loss(_Toy(hidden, head), {"labels": labels}, num_items_in_batch=40)
    assert "entropy_sum" not in stats  # no metrics unless asked
    assert abs(ten.item() - one.item() * 4 / 40) < 1e-6


@pytest.mark.slow
def test_engine_loss_curve_matches_plain_trl(tiny_cfg, tmp_path):
    """First-step loss within 1e-4 of plain TRL; every logged loss within 1e-3 (relative) over 6 steps."""
    from studio.bench import train as bench_train
    from studio.events import Log
    from studio.training import TrainingJob

    cfg = tiny_cfg(max_steps=6, logging_steps=1, seed=0).with_overrides(["model.compute_dtype=fp32",
                                                                          "lora.dropout=0.0"])
    job = TrainingJob(cfg)
    job.run()
    studio = [e.loss for e in job.events.all() if isinstance(e, Log)]
    assert job.trainer is None and job.plan is not None
    holder: dict = {}
    timer_cls = bench_train._timer(lambda: holder["trainer"])
    bench_train._plain(cfg.with_overrides([f"train.output_dir={tmp_path / 'plain'}"]), timer_cls, holder)
    plain = [h["loss"] for h in holder["trainer"].state.log_history if "loss" in h]
    assert len(studio) == len(plain) == 6
    assert abs(studio[0] - plain[0]) < 1e-4
    assert all(abs(a - b) <= 1e-3 * abs(b) for a, b in zip(studio, plain)), (studio, plain)
    assert studio[-1] < studio[0]  # it trains


def _trainer(cfg):
    """The engine's trainer for ``cfg``, built (not trained), and the prepared rows."""
    from studio.data import prepare_datasets
    from studio.modeling import base_tokenizer, load_base, lora_config
    from studio.speed import plan_speed
    from studio.speed.plan import model_config_for_plan
    from studio.training import TrainingJob

    job = TrainingJob(cfg)
    tok = base_tokenizer(cfg.model)
    prepared = prepare_datasets(cfg, tok[0])
    job.plan = plan_speed(cfg, device="cpu")
    job.model, job.tokenizer = load_base(model_config_for_plan(cfg.model, job.plan), device="cpu",
                                         for_training=True, tokenizer=tok)
    return job._build_trainer(prepared, lora_config(cfg, job.model), job.plan), prepared


@pytest.mark.slow
def test_packed_bins_as_rows_give_the_flattened_rows_loss(tiny_cfg):
    """SDPA on CPU: each packed bin is its own row (sum(L^2) attention), with the flattened row's exact loss."""
    from studio.speed.packrows import REAL_TOKENS, PacksAsRows

    cfg = tiny_cfg(packing=True, batch_size=4, max_length=48).with_overrides(["lora.dropout=0.0"])
    trainer, prepared = _trainer(cfg)
    assert isinstance(trainer.data_collator, PacksAsRows) and trainer.model.config._attn_implementation == "sdpa"
    bins = [trainer.train_dataset[i] for i in range(3)]  # the packed dataset: bins of rows
    rows = trainer._prepare_inputs(trainer.data_collator(bins))
    flat = trainer._prepare_inputs(trainer.data_collator.inner(bins))
    assert rows["input_ids"].shape[0] == 3 and flat["input_ids"].shape[0] == 1
    assert int(rows[REAL_TOKENS]) == flat["input_ids"].shape[1]
    trainer.model.train()
    a = trainer.compute_loss(trainer.model, dict(rows))
    b = trainer.compute_loss(trainer.model, dict(flat))
    assert abs(a.item() - b.item()) < 1e-5


@pytest.mark.slow
def test_metrics_only_on_logging_steps_and_same_as_trl(tiny_cfg):
    """Entropy and token accuracy come only on the steps that log, with TRL's values on those batches."""
    import torch

    cfg = tiny_cfg(max_steps=1, logging_steps=3).with_overrides(["model.compute_dtype=fp32", "lora.dropout=0.0"])
    trainer, prepared = _trainer(cfg)
    batch = trainer._prepare_inputs(trainer.data_collator([prepared.train[i] for i in range(2)]))
    trainer.model.train()
    trainer.state.logging_steps = 3
    seen = []
    for step in range(6):
        trainer.state.global_step = step
        trainer._metrics["train"].clear()
        trainer.compute_loss(trainer.model, dict(batch))
        seen.append("entropy" in trainer._metrics["train"])
    assert seen == [True, False, True, False, False, True]  # step 1 (logging_first_step), 3, 6
    assert trainer.studio_fast_loss is None
    ours = {k: list(v) for k, v in trainer._metrics["train"].items()}
    trainer.studio_fast_loss = "reference"  # TRL's own compute_loss on the same batch
    trainer._metrics["train"].clear()
    with torch.no_grad():
        trainer.compute_loss(trainer.model, dict(batch))
    theirs = trainer._metrics["train"]
    assert abs(ours["entropy"][0] - theirs["entropy"][0]) < 1e-4
    assert abs(ours["mean_token_accuracy"][0] - theirs["mean_token_accuracy"][0]) < 1e-6


def test_a_bf16_head_gives_fp32_logits_under_autocast():
    """CPU bf16 runs (bf16 base, autocast): the head and the loss stay fp32, so the loss equals the fp32 one computed
    from the same bf16 numbers (a bf16 matmul would be ~1e-2 off), and the gradient comes back in the base's dtype."""
    import torch

    from studio.speed.loss import HeadNLL

    torch.manual_seed(0)
    hidden = (torch.randn(64, 96) * 3).bfloat16().requires_grad_()
    weight = (torch.randn(4000, 96) * 0.5).bfloat16()
    targets = torch.randint(0, 4000, (64,))
    want = torch.nn.functional.cross_entropy(hidden.float() @ weight.float().t(), targets, reduction="sum")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        nll, _, _ = HeadNLL.apply(hidden, weight, None, targets, False, True)
    assert nll.dtype == torch.float32 and abs(nll.item() - want.item()) < 1e-3 * abs(want.item()) * 1e-2
    nll.backward()
    assert hidden.grad.dtype == torch.bfloat16 and torch.isfinite(hidden.grad.float()).all()
