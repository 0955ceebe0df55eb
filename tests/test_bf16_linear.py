"""A bf16 base on the CPU: the layers that write the residual stream return fp32, so a small LoRA update is not
rounded away, and the patched model runs with and without autocast."""
from __future__ import annotations

import pytest

from studio.speed.bf16_linear import keep_residual_fp32

torch = pytest.importorskip("torch")


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(64, 64)
        self.head = torch.nn.Linear(64, 8)

    def get_output_embeddings(self):
        return self.head

    def forward(self, x):
        return self.head(self.proj(x))


def _lora_update_seen(fix: bool) -> tuple[float, object]:
    """How much of a small LoRA update (about 0.1 % of the layer's output) the bf16 layer's output keeps."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = Block().to(torch.bfloat16)
    if fix:
        assert keep_residual_fp32(model) == {"fp32_out": 1, "bf16_out": 1}  # proj; the head keeps bf16
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=4, target_modules=["proj"], lora_dropout=0.0))
    layer = model.base_model.model.proj
    layer.lora_A["default"].weight.data.fill_(0.01)
    layer.lora_B["default"].weight.data.fill_(0.002)
    x = torch.randn(16, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
        on = out.float()
        with model.disable_adapter():
            off = layer(x).float()
    with torch.no_grad():
        exact = (x @ layer.lora_A["default"].weight.T.float() @ layer.lora_B["default"].weight.T.float())
    return float(((on - off) - exact).abs().mean() / exact.abs().mean()), out.dtype


def test_a_small_lora_update_survives_with_fp32_outputs_and_is_rounded_away_without():
    lost_before, dtype_before = _lora_update_seen(fix=False)
    lost_after, dtype_after = _lora_update_seen(fix=True)
    assert dtype_before == torch.bfloat16 and dtype_after == torch.float32
    assert lost_before > 0.5, (lost_before, lost_after)  # bf16 output: most of the update rounds away
    assert lost_after < 0.05, lost_after


def test_inputs_of_any_dtype_work_without_autocast():
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 4).to(torch.bfloat16)
    model = torch.nn.Sequential(layer)
    assert keep_residual_fp32(model)["fp32_out"] == 1
    ref = torch.nn.functional.linear(torch.ones(2, 8, dtype=torch.bfloat16), layer.weight, layer.bias).float()
    assert torch.equal(layer(torch.ones(2, 8)), ref) and layer(torch.ones(2, 8)).dtype == torch.float32
    assert keep_residual_fp32(torch.nn.Sequential(torch.nn.Linear(8, 4)))["fp32_out"] == 0  # fp32: left alone


def test_on_a_llama_every_projection_returns_fp32_and_it_generates_without_autocast():
    from transformers import AutoModelForCausalLM

    from studio.demo import ensure_demo_model

    model = AutoModelForCausalLM.from_pretrained(ensure_demo_model(), dtype=torch.bfloat16)
    layers = model.config.num_hidden_layers
    counts = keep_residual_fp32(model)
    assert counts == {"fp32_out": 7 * layers, "bf16_out": 1}  # q k v o gate up down; the head
    seen = {}
    for name in ("self_attn.o_proj", "self_attn.q_proj", "mlp.down_proj", "mlp.up_proj", "post_attention_layernorm"):
        model.model.layers[0].get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: seen.setdefault(name, o.dtype) and None)
    out = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 6)
    assert seen == {"self_attn.o_proj": torch.float32, "mlp.down_proj": torch.float32,
                    "self_attn.q_proj": torch.float32, "mlp.up_proj": torch.float32,
                    "post_attention_layernorm": torch.float32}  # the residual stream: fp32 after the first add
