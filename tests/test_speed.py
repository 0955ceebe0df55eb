"""The fast path on CPU: attention choice, boosters, checkpointing policy, plan, FLOPs/MFU, k-bit preparation
without fp32 upcast (vs peft), and no cross-contamination between packed sequences."""
from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest

from studio.speed.attention import choose_packed_attention
from studio.speed.boosters import apply_liger, choose_booster
from studio.modeling.memory import decide_checkpointing
from studio.speed.flops import (Peak, batch_token_counts, effective_seq, flops_per_token, matmul_params, mfu,
                                peak_flops)

LLAMA_1B = dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
                tie_word_embeddings=True)


# ----------------------------------------------------------------------------------------------- attention
def test_packed_attention_on_cpu_is_sdpa_block_diagonal():
    impl, why = choose_packed_attention("auto", packing=True, device="cpu")
    assert impl == "sdpa" and "block-diagonal" in why and "CPU" in why


def test_packed_attention_prefers_flash_varlen_then_flex_on_cuda():
    impl, why = choose_packed_attention("auto", packing=True, device="cuda", flash_version="2.7.4",
                                        capability=(9, 0), flex_ok=True)
    assert impl == "flash_attention_2" and "varlen" in why
    impl, why = choose_packed_attention("auto", packing=True, device="cuda", flash_version=None,
                                        capability=(9, 0), flex_ok=True)
    assert impl == "flex_attention" and "flash-attn not installed" in why


@pytest.mark.parametrize("asked", ["sdpa", "eager"])
def test_never_sdpa_with_a_packed_dense_mask_on_cuda(asked):
    impl, why = choose_packed_attention(asked, packing=True, device="cuda", flash_version=None,
                                        capability=(8, 0), flex_ok=True)
    assert impl == "flex_attention" and "dense mask" in why


def test_no_boundary_aware_kernel_on_cuda_turns_packing_off(tiny_cfg):
    from studio.speed import plan_speed

    cfg = tiny_cfg(packing=True)
    plan = plan_speed(cfg, device="cuda", flash_version=None, capability=(7, 5), flex_ok=False, liger=None,
                      estimate=None)
    assert plan.attn_impl == "sdpa" and not plan.packing and plan.packing_reason.startswith("no packing:")


def test_unpacked_attention_delegates_to_modeling_choice():
    assert choose_packed_attention("auto", packing=False, device="cpu", flash_version=None, capability=None)[0] \
        == "sdpa"


def test_gemma2_packed_on_cpu_keeps_eager():
    from studio.modeling import find_preset

    impl, why = choose_packed_attention("auto", packing=True, device="cpu", preset=find_preset("gemma-2-2b"))
    assert impl == "eager" and "soft-caps" in why


# ------------------------------------------------------------------------------------------------ boosters
def test_booster_reasons_never_crash():
    assert choose_booster("none", "llama", device="cuda", liger="0.6") == ("none", "booster off (train.booster: none)")
    b, why = choose_booster("auto", "llama", device="cuda", liger=None)
    assert b == "none" and "not installed" in why
    b, why = choose_booster("liger", "phi", device="cuda", liger="0.6")
    assert b == "none" and "'phi' is not supported" in why
    b, why = choose_booster("auto", "falcon", device="cuda", liger="0.6")
    assert b == "none" and "falcon" in why
    b, why = choose_booster("auto", "llama", device="cpu", liger="0.6")
    assert b == "none" and "CPU" in why
    for mt in ("llama", "mistral", "gemma", "gemma2", "qwen2", "qwen3", "phi3"):
        assert choose_booster("auto", mt, device="cuda", liger="0.6")[0] == "liger"


def test_apply_liger_without_the_package_is_a_reason(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("liger_kernel"):
            raise ImportError("no liger here")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    ok, why = apply_liger(SimpleNamespace())
    assert not ok and "liger-kernel failed to import" in why


def test_apply_booster_downgrades_the_plan_on_failure(tiny_cfg, monkeypatch):
    from studio.speed import apply_booster, plan_speed
    from studio.speed import boosters

    plan = plan_speed(tiny_cfg(packing=True), device="cpu")
    plan.booster = "liger"
    monkeypatch.setitem(boosters.BOOSTERS, "liger", lambda m: (False, "Liger kernels skipped: boom"))
    assert apply_booster(object(), plan) == "Liger kernels skipped: boom"
    assert plan.booster == "none" and "boom" in " ".join(plan.lines())


# ---------------------------------------------------------------------------------------------- checkpointing
def _est(total, acts, no_ckpt, ckpt, device_gb, device="cuda"):
    return SimpleNamespace(total_gb=total, activations_gb=acts, activations_no_ckpt_gb=no_ckpt,
                           activations_ckpt_gb=ckpt, device_gb=device_gb, device=device)


def test_checkpointing_policy():
    assert decide_checkpointing(True)[0] is True and "non-reentrant" in decide_checkpointing(True)[1]
    assert decide_checkpointing(False)[0] is False
    on, why = decide_checkpointing("auto", _est(20, 2, 30, 2, 80))   # 48 GB without <= 64 GB budget
    assert on is False and "fits" in why
    on, why = decide_checkpointing("auto", _est(20, 2, 60, 2, 80))   # 78 GB without > 64 GB
    assert on is True and "exceeds" in why
    assert decide_checkpointing("auto", None)[0] is True
    assert decide_checkpointing("auto", _est(20, 2, 500, 2, 8, device="cpu"))[0] is False


def test_memory_estimate_decides_auto_with_the_one_policy(monkeypatch):
    """``estimate_memory`` with ``auto`` answers what ``decide_checkpointing`` answers, on either side of the
    safety margin (a second policy with another margin would disagree near it)."""
    from studio.config import RunConfig
    from studio.modeling import estimate_memory, memory

    cfg = RunConfig.from_dict({"train": {"gradient_checkpointing": "auto", "batch_size": 8, "max_length": 1024}})
    monkeypatch.setattr(memory, "device_memory", lambda device: ("cuda", "test GPU", 1000.0))
    without = estimate_memory(cfg, gradient_checkpointing=False).total_gb  # GB needed without checkpointing
    for share in (0.78, 0.82, 0.88, 0.95):  # that figure as a share of the device's memory
        monkeypatch.setattr(memory, "device_memory", lambda device, gb=without / share: ("cuda", "test GPU", gb))
        est = estimate_memory(cfg)
        want, _ = decide_checkpointing("auto", estimate_memory(cfg, gradient_checkpointing=False))
        assert est.gradient_checkpointing is want, share
        assert est.activations_gb == (est.activations_ckpt_gb if want else est.activations_no_ckpt_gb)
    assert want is True and estimate_memory(cfg.with_overrides(["train.gradient_checkpointing=off"])) \
        .gradient_checkpointing is False


def test_checkpointing_words_are_one_mapping():
    from studio.config import RunConfig, TrainConfig
    from studio.config_values import CHECKPOINTING_SHOWN as SHOWN
    from studio.config_values import CHECKPOINTING_WORDS as WORDS
    from studio.config_values import checkpointing_word as setting_word
    from studio.ui.forms import from_widget, to_widget

    for word, setting in WORDS.items():
        for spelled in (word, word.upper()):
            assert RunConfig.from_dict({"train": {"gradient_checkpointing": spelled}}).train \
                .gradient_checkpointing == setting
        assert to_widget(TrainConfig, "gradient_checkpointing", setting) == setting_word(setting) in SHOWN
        assert from_widget(TrainConfig, "gradient_checkpointing", setting_word(setting)) == setting


# ------------------------------------------------------------------------------------------------------ plan
def test_plan_on_cpu_and_sft_kwargs(tiny_cfg):
    from studio.speed import plan_speed, sft_speed_kwargs

    cfg = tiny_cfg(packing=True, batch_size=8, gradient_checkpointing="auto")
    plan = plan_speed(cfg, device="cpu", mean_tokens=12)
    assert plan.attn_impl == "sdpa" and plan.packing and plan.packing_strategy == "bfd" and plan.padding_free
    assert plan.per_device_batch == 2  # 8 rows x 12 tokens in 48-token packs
    assert plan.gradient_checkpointing is False and plan.kbit == "none"
    kw = sft_speed_kwargs(plan)
    assert kw["packing"] and kw["packing_strategy"] == "bfd" and kw["per_device_train_batch_size"] == 2
    assert kw["use_liger_kernel"] is False and "gradient_checkpointing_kwargs" not in kw
    assert len(plan.lines()) == 6 and plan.to_dict()["padding_free"] is True


def test_plan_for_qlora_on_an_h100_uses_no_upcast_and_decides_checkpointing(tiny_cfg):
    from studio.config import RunConfig
    from studio.speed import plan_speed, sft_speed_kwargs

    cfg = RunConfig.from_dict({"model": {"name_or_path": "mistral-7b", "quantization": "4bit",
                                         "compute_dtype": "bf16"},
                               "train": {"packing": True, "batch_size": 8, "max_length": 2048}})
    plan = plan_speed(cfg, device="cuda", mean_tokens=2048, flash_version=None, capability=(9, 0), flex_ok=True,
                      liger="0.6", estimate=_est(150, 5, 140, 5, 80))
    assert (plan.attn_impl, plan.booster, plan.kbit, plan.gradient_checkpointing) == \
        ("flex_attention", "liger", "studio", True)
    assert sft_speed_kwargs(plan)["gradient_checkpointing_kwargs"] == {"use_reentrant": False}


# ----------------------------------------------------------------------------------------------------- flops
def test_flops_per_token_for_lora():
    n = matmul_params(LLAMA_1B)
    assert 1.20e9 < n < 1.27e9  # Llama-3.2-1B: 1.24B parameters, all in matmuls with the tied head
    assert flops_per_token(LLAMA_1B, 1000, lora=False) > flops_per_token(LLAMA_1B, 1000) > \
        flops_per_token(LLAMA_1B, 100)  # a full fine-tune adds the weight gradients; attention grows with seq
    assert effective_seq([100, 300]) == pytest.approx((100 ** 2 + 300 ** 2) / 400)
    assert mfu(10_000, 1e10, Peak(1e15, "x")) == pytest.approx(0.1)


def test_flops_per_token_matches_torchs_flop_count_of_a_lora_step():
    """torch's FlopCounterMode counts the matmuls of a real forward + backward through a LoRA model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoConfig, AutoModelForCausalLM

    shape = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=8,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=512)
    spec = dict(shape)
    config = AutoConfig.for_model(spec.pop("model_type"), **spec)
    config._attn_implementation = "eager"  # its matmuls are counted (CPU SDPA's fused kernel is not)
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_config(config),
                           LoraConfig(r=4, target_modules="all-linear", lora_dropout=0.0))
    lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    seq = 8
    ids = torch.randint(0, 512, (2, seq))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    measured = counter.get_total_flops() / ids.numel()
    # 3A counts half the attention square (causal); eager attention computes all of it: ~2 % here at seq 8
    assert flops_per_token(shape, seq, lora_params=lora) == pytest.approx(measured, rel=0.03)


def test_peak_table_and_cpu_fallback():
    assert peak_flops("NVIDIA H100 80GB HBM3").flops == 989e12
    assert peak_flops("NVIDIA H100 PCIe").flops == 756e12
    assert peak_flops("NVIDIA H200").flops == 989e12
    assert peak_flops("NVIDIA A10G").flops == 70e12
    assert peak_flops("Mystery GPU").flops == 0
    cpu = peak_flops(device="cpu")
    assert cpu.flops > 0 and "CPU estimate" in cpu.source


def test_batch_token_counts_padded_and_padding_free():
    import torch

    padded = {"input_ids": torch.zeros(2, 5), "attention_mask": torch.tensor([[1, 1, 1, 0, 0], [1] * 5])}
    assert batch_token_counts(padded) == (8, 10, [3, 5])
    flat = {"input_ids": torch.zeros(1, 6), "position_ids": torch.tensor([[0, 1, 2, 0, 1, 0]])}
    assert batch_token_counts(flat) == (6, 6, [3, 2, 1])


def test_token_window_sums_match_the_counts_without_a_sync():
    """The engine's per-step counter: the same figures as batch_token_counts, summed lazily over micro-batches."""
    import torch

    from studio.speed.flops import SpeedMeter, TokenWindow, batch_token_sums

    padded = {"input_ids": torch.zeros(2, 5), "attention_mask": torch.tensor([[1, 1, 1, 0, 0], [1] * 5])}
    flat = {"input_ids": torch.zeros(1, 6), "position_ids": torch.tensor([[0, 1, 2, 0, 1, 0]])}
    cu = {**flat, "cu_seq_lens_q": torch.tensor([0, 3, 5, 6], dtype=torch.int32)}
    for batch in (padded, flat, cu):
        real, positions, lengths = batch_token_counts(batch)
        r, p, sq = batch_token_sums(batch)
        assert (int(r), p, int(sq)) == (real, positions, sum(n * n for n in lengths))
    window = TokenWindow()
    window.add(padded)
    window.add(flat)
    assert window.take() == (14, 16, 34 + 14) and window.take() == (0, 0, 0)
    a, b = SpeedMeter(LLAMA_1B, peak=Peak(1e12, "test")), SpeedMeter(LLAMA_1B, peak=Peak(1e12, "test"))
    a.add(8, 10, [3, 5], 2.0)
    b.add_sums(8, 10, 34, 2.0)
    assert a.snapshot() == b.snapshot() and a.snapshot()["padding_share"] == 0.2


# ------------------------------------------------------------------------------------------------------ k-bit
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    LlamaForCausalLM(cfg).save_pretrained(str(folder))
    return folder


def _load_4bit(folder):
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                           bnb_4bit_compute_dtype=torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoModelForCausalLM.from_pretrained(str(folder), quantization_config=q, device_map="cpu",
                                                    dtype=torch.bfloat16)


def test_kbit_prep_keeps_bf16_where_peft_upcasts_everything(tiny_checkpoint):
    import torch
    from peft import prepare_model_for_kbit_training

    from studio.speed.kbit import fp32_param_count, prepare_kbit_model

    ours, theirs = _load_4bit(tiny_checkpoint), _load_4bit(tiny_checkpoint)
    non_quant = sum(p.numel() for p in ours.parameters() if p.__class__.__name__ != "Params4bit")
    prep = prepare_kbit_model(ours)
    prepare_model_for_kbit_training(theirs, use_gradient_checkpointing=False)
    assert prep.method == "studio-bfloat16" and prep.fp32_params == 0 == fp32_param_count(ours)
    assert fp32_param_count(theirs) == non_quant > 0  # peft: embeddings, every norm, LM head in fp32
    assert not any(p.requires_grad for p in ours.parameters())
    ids = torch.randint(4, 256, (2, 24))
    with torch.no_grad():
        a = ours(input_ids=ids, labels=ids, use_cache=False)
        b = theirs(input_ids=ids, labels=ids, use_cache=False)
    assert a.logits.dtype == torch.bfloat16 and b.logits.dtype == torch.float32  # peft's residual stream is fp32
    assert abs(a.loss.item() - b.loss.item()) < 0.05  # same model, bf16 rounding only


def test_kbit_prep_trains_with_lora(tiny_checkpoint):
    import torch
    from peft import LoraConfig, get_peft_model

    from studio.speed.kbit import prepare_kbit_model

    model = _load_4bit(tiny_checkpoint)
    prepare_kbit_model(model, gradient_checkpointing=True)
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()
    ids = torch.randint(4, 256, (2, 16))
    loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert torch.isfinite(loss) and grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


# ------------------------------------------------------------------------------------- cross-contamination
def _demo_model(attn):
    from studio.config import ModelConfig
    from studio.modeling import load_base

    return load_base(ModelConfig(attn_implementation=attn), device="cpu")


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_sequence_logits_equal_logits_alone(attn):
    """Tolerance: max |logit difference| <= 1e-4 in fp32 (measured ~2e-7): the packed path (TRL's bfd packing and
    padding-free collator: one flattened row, position_ids restarting per sequence, no attention mask) lets no
    sequence see its neighbours."""
    import torch
    from datasets import Dataset
    from trl.data_utils import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from studio.speed import plan_speed

    model, tok = _demo_model(attn)
    torch.manual_seed(0)
    seqs = [torch.randint(4, tok.vocab_size, (n,)).tolist() for n in (37, 5, 64, 19, 50)]
    packed = pack_dataset(Dataset.from_dict({"input_ids": seqs}), seq_length=128, strategy="bfd")
    collator = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id, padding_free=True)
    batch = collator([packed[i] for i in range(len(packed))])
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        flat = batch["input_ids"][0].tolist()
        off, checked = 0, 0
        for n in batch["cu_seq_lens_q"].diff().tolist():
            piece = flat[off:off + n]
            alone = model(input_ids=torch.tensor([piece]), use_cache=False).logits[0]
            assert (logits[off:off + n] - alone).abs().max().item() <= 1e-4
            off += n
            checked += 1
    assert checked == len(seqs)
    # and this is the kernel the plan picks for packed CPU runs
    from studio.config import RunConfig

    assert plan_speed(RunConfig.from_dict({"train": {"packing": True}}), device="cpu").attn_impl == "sdpa"


def test_packed_logits_differ_without_boundaries():
    """Control: the same flattened row with positions 0..T-1 (no restarts) does contaminate."""
    import torch

    model, tok = _demo_model("sdpa")
    torch.manual_seed(1)
    a, b = torch.randint(4, tok.vocab_size, (20,)), torch.randint(4, tok.vocab_size, (20,))
    with torch.no_grad():
        joined = model(input_ids=torch.cat([a, b])[None], use_cache=False).logits[0, 20:]
        alone = model(input_ids=b[None], use_cache=False).logits[0]
    assert (joined - alone).abs().max().item() > 1e-3


def test_packed_micro_batch_counts_rows_with_a_throughput_floor():
    from studio.config import RunConfig
    from studio.speed import plan_speed

    cfg = RunConfig.from_dict({"train": {"packing": True, "batch_size": 8, "max_length": 2048}})
    kw = dict(device="cuda", mean_tokens=500, flash_version=None, capability=(9, 0), flex_ok=True, liger=None,
              estimate=_est(10, 1, 2, 1, 80))
    assert plan_speed(cfg, min_step_tokens=0, **kw).per_device_batch == 2      # 8 rows x 500 tokens
    plan = plan_speed(cfg, min_step_tokens=8192, **kw)
    assert plan.per_device_batch == 4 and "per-step overhead" in plan.batch_reason
    assert plan_speed(cfg, min_step_tokens=10 ** 6, **kw).per_device_batch == 8  # never more packs than rows


def test_packed_micro_batch_says_how_many_rows_a_step_trains():
    """train.batch_size counts rows; where whole packs can't match it, the reason says what a step trains."""
    from studio.config import RunConfig
    from studio.speed import plan_speed

    def plan(bs, max_length, mean, **kw):
        cfg = RunConfig.from_dict({"train": {"packing": True, "batch_size": bs, "max_length": max_length,
                                             "grad_accum": 2}})
        return plan_speed(cfg, device="cpu", mean_tokens=mean, liger=None, **kw)

    fits = plan(8, 1024, 256)
    assert fits.per_device_batch == 2 and "~ 8 rows" in fits.batch_reason and "counts rows" in fits.batch_reason
    one = plan(1, 1024, 100)  # one pack is the smallest step: ~10 rows instead of 1
    assert one.per_device_batch == 1
    assert "~10 rows" in one.batch_reason and "not train.batch_size=1" in one.batch_reason
    assert "~20 rows per optimizer step (grad_accum 2)" in one.batch_reason
    raised = plan(8, 2048, 500, min_step_tokens=8192)
    assert raised.per_device_batch == 4 and "raised from 2" in raised.batch_reason
    assert "a step trains ~16 rows, not 8" in raised.batch_reason


def test_mean_row_tokens_reads_kept_lengths():
    import datasets

    from studio.speed.plan import mean_row_tokens

    ds = datasets.Dataset.from_dict({"input_ids": [[1, 2], [1, 2, 3, 4]], "completion_mask": [[1, 1], [0, 1, 1, 1]]})
    assert mean_row_tokens(ds) == 3.0
    assert mean_row_tokens(datasets.Dataset.from_dict({"text": ["a"]})) is None


def test_bench_ratios_include_the_lowmem_trade_off():
    from studio.bench.gpu import ratios

    runs = [{"name": "plain", "tokens_per_s": 100, "peak_mem_bytes": 10}, {"name": "tuned", "tokens_per_s": 200,
            "peak_mem_bytes": 20}, {"name": "studio", "tokens_per_s": 300, "peak_mem_bytes": 15},
            {"name": "studio-lowmem", "tokens_per_s": 250, "peak_mem_bytes": 4}]
    r = ratios(runs)
    assert (r["studio_vs_plain_tokens"], r["studio_vs_plain_memory"], r["studio_vs_tuned_tokens"]) == (3.0, 1.5, 1.5)
    assert (r["lowmem_vs_plain_tokens"], r["lowmem_vs_plain_memory"]) == (2.5, 0.4)
