"""4-bit on CPUs with and without AVX512-BF16: the packed kernel, layers it can't pack, readable errors, training."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("bitsandbytes")

from studio.config import ModelConfig  # noqa: E402
from studio.errors import ModelError  # noqa: E402
from studio.modeling import kbit_cpu  # noqa: E402

ODD_WIDTH = 352  # the old demo MLP: 352 = 5.5 blocks of 64


def _linear4bit(model):
    return [(n, m) for n, m in model.named_modules() if type(m).__name__ == "Linear4bit"]


def _load(name, **kw):
    from studio.modeling import load_base

    return load_base(ModelConfig(name_or_path=name, quantization="4bit"), device="cpu", **kw)


@pytest.fixture(scope="module")
def odd_model(tmp_path_factory) -> Path:
    """The demo model with an MLP width that is not a multiple of 64, random weights, the demo tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from studio import demo

    src = demo.ensure_demo_model()
    out = tmp_path_factory.mktemp("odd")
    config = AutoConfig.from_pretrained(src)
    config.intermediate_size = ODD_WIDTH
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    for f in src.iterdir():
        if "token" in f.name or f.suffix == ".jinja":
            shutil.copy(f, out)
    return out


def _ids(tok):
    return tok("A farmer has 12 cows and buys 7 more.", return_tensors="pt").input_ids


def test_packed_avx512bf16_path_runs_and_matches_the_unpacked_one():
    import torch

    if not kbit_cpu.packs_on_cpu():
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes never repacks 4-bit weights here")
    from studio.config import DEMO_MODEL

    packed, tok = _load(DEMO_MODEL)
    plain, _ = _load(DEMO_MODEL)
    assert kbit_cpu.keep_unpacked(plain) == len(_linear4bit(plain)) > 0  # the generic (dequantize) path
    with torch.no_grad():
        a, b = packed(_ids(tok)).logits, plain(_ids(tok)).logits
    layers = _linear4bit(packed)
    assert layers and all(m.weight.quant_state.packing_format_for_cpu for _, m in layers)
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for _, m in _linear4bit(plain))
    assert {m.weight.quant_state.blocksize for _, m in _linear4bit(plain)} == {kbit_cpu.BLOCKSIZE}
    # the packed kernel computes in bf16: close to the fp32 path, same greedy tokens
    assert (a - b).abs().max() < 0.05 * b.abs().max()
    assert torch.equal(a.argmax(-1), b.argmax(-1))


def test_unpackable_layers_are_kept_unquantized_and_the_load_says_so(odd_model):
    """Forced to plan as on an AVX512-BF16 CPU, so it runs the same on both kinds."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.modeling import quantization_config

    quant = quantization_config(ModelConfig(name_or_path=str(odd_model), quantization="4bit"), "cpu")
    reason = kbit_cpu.plan_cpu_4bit(quant, str(odd_model), {}, device="cpu", packs=True)
    assert "model.layers.0.mlp.down_proj (352->128)" in reason and "kept unquantized" in reason
    assert "lm_head" in quant.llm_int8_skip_modules  # transformers' default skip is kept
    model = AutoModelForCausalLM.from_pretrained(odd_model, quantization_config=quant, device_map="cpu").eval()
    kinds = {n: type(m).__name__ for n, m in model.named_modules() if n.endswith(("down_proj", "up_proj"))}
    assert {k for n, k in kinds.items() if n.endswith("down_proj")} == {"Linear"}
    assert {k for n, k in kinds.items() if n.endswith("up_proj")} == {"Linear4bit"}
    assert kbit_cpu.unpackable_layers(model) and not [
        n for n, _, _ in kbit_cpu.unpackable_layers(model) if type(model.get_submodule(n)).__name__ == "Linear4bit"]
    kbit_cpu.check_loaded(model, device="cpu", packs=True)  # nothing left to fail
    with torch.no_grad():
        assert model(_ids(AutoTokenizer.from_pretrained(odd_model))).logits.isfinite().all()
    # no plan off the CPU, for 8-bit, or where the CPU does not pack
    for dev, packs in (("cuda", True), ("cpu", False)):
        q = quantization_config(ModelConfig(name_or_path=str(odd_model), quantization="4bit"), "cpu")
        assert kbit_cpu.plan_cpu_4bit(q, str(odd_model), {}, device=dev, packs=packs) == ""
        assert q.llm_int8_skip_modules is None


def test_load_base_on_this_cpu_runs_a_model_with_unpackable_layers(odd_model):
    import torch

    base = _load(str(odd_model))
    model, tok = base
    with torch.no_grad():
        assert model(_ids(tok)).logits.isfinite().all()
    odd = [n for n, _, _ in kbit_cpu.unpackable_layers(model)]
    kinds = {type(model.get_submodule(n)).__name__ for n in odd}
    if kbit_cpu.packs_on_cpu():
        assert f"{len(odd)} layer(s) kept unquantized" in base.quant_reason and kinds == {"Linear"}
    else:  # nothing is repacked here, so everything stays 4-bit
        assert base.quant_reason == "" and kinds == {"Linear4bit"}


def test_unpackable_4bit_layers_get_a_clear_message_not_a_raw_error(odd_model):
    """The raw repack error, raised on any CPU by calling bitsandbytes' repack itself, and the load-time check."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from bitsandbytes.functional import _convert_weight_packed_for_cpu

    from studio.training.failures import explain_failure

    model = AutoModelForCausalLM.from_pretrained(odd_model, quantization_config=BitsAndBytesConfig(load_in_4bit=True),
                                                 device_map="cpu")
    with pytest.raises(ModelError, match=r"model\.layers\.0\.mlp\.down_proj \(352->128\).*8-bit"):
        kbit_cpu.check_loaded(model, device="cpu", packs=True)
    kbit_cpu.check_loaded(model, device="cpu", packs=False)  # such a CPU never repacks: fine
    layer = model.get_submodule("model.layers.0.mlp.down_proj")
    with pytest.raises(RuntimeError, match="is invalid for input of size") as raw:
        _convert_weight_packed_for_cpu(layer.weight.data.clone(), layer.weight.quant_state)
    assert kbit_cpu.is_packing_error(raw.value)
    with pytest.raises(ModelError, match="AVX512-BF16.*8-bit"):
        with kbit_cpu.readable_errors():
            raise raw.value
    with pytest.raises(RuntimeError, match="something else"):  # other errors pass through untouched
        with kbit_cpu.readable_errors():
            raise RuntimeError("something else")
    message, suggestion = explain_failure(raw.value, None)
    assert "AVX512-BF16" in message and "8-bit" in suggestion


@pytest.mark.slow
def test_a_training_load_keeps_gradients_after_an_eval_pass():
    """Training evaluates between steps; a packed layer has no backward, so a training load never packs."""
    import torch
    from peft import LoraConfig, get_peft_model

    from studio.config import DEMO_MODEL

    model, tok = _load(DEMO_MODEL, for_training=True)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    peft_model.eval()
    with torch.no_grad():
        peft_model(_ids(tok))
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for _, m in _linear4bit(model))
    peft_model.train()
    ids = _ids(tok)
    peft_model(ids, labels=ids).loss.backward()
    first = peft_model.get_submodule("base_model.model.model.layers.0.self_attn.q_proj.lora_B.default")
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0


def _paths_probe(generic: bool) -> dict:
    """Logits and a LoRA gradient of the demo model in 4-bit and 8-bit; ``generic``: bitsandbytes' paths for CPUs
    without AVX512 (4-bit: no repack; 8-bit: set in the environment with ``ATEN_CPU_CAPABILITY=avx2``)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from studio.config import DEMO_MODEL
    from studio.modeling import load_base

    out = {"capability": torch.backends.cpu.get_cpu_capability()}
    for q in ("4bit", "8bit"):
        cfg = ModelConfig(name_or_path=DEMO_MODEL, quantization=q)
        model, tok = load_base(cfg, device="cpu")
        if generic:
            kbit_cpu.keep_unpacked(model)
        with torch.no_grad():
            logits = model(_ids(tok)).logits[0]
        trained, _ = load_base(cfg, device="cpu", for_training=True)
        peft_model = get_peft_model(trained, LoraConfig(r=4, target_modules="all-linear"))
        ids = _ids(tok)
        peft_model(ids, labels=ids).loss.backward()
        grad = peft_model.get_submodule("base_model.model.model.layers.0.self_attn.q_proj.lora_B.default").weight.grad
        out[q] = {"logits": logits[:, :64].tolist(), "grad": float(grad.abs().sum())}
    return out


@pytest.mark.slow
def test_4bit_and_8bit_agree_on_both_kinds_of_cpu_path(tmp_path):
    """This machine's bitsandbytes paths against the generic ones (run in a child process that forces them)."""
    import json
    import os
    import subprocess
    import sys

    import torch

    here = _paths_probe(generic=False)
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parent), str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    code = "import json, test_kbit_cpu as t; print('PROBE' + json.dumps(t._paths_probe(generic=True)))"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("PROBE")), None)
    assert line is not None, proc.stderr[-2000:]
    there = json.loads(line[len("PROBE"):])
    assert there["capability"] == "AVX2"
    for q in ("4bit", "8bit"):
        a, b = torch.tensor(here[q]["logits"]), torch.tensor(there[q]["logits"])
        assert (a - b).abs().max() < 0.05 * b.abs().max(), q
        assert here[q]["grad"] > 0 and there[q]["grad"] > 0, q
