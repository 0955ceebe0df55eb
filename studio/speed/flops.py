"""Model FLOPs per token and MFU (model FLOPs utilisation).

For LoRA on a frozen base, one token costs about ``4N + 3A`` FLOPs per step:

* ``N`` = matmul parameters (every linear layer plus the LM head; embedding lookups are not matmuls). The forward
  pass is ``2N``; the backward pass needs the gradient with respect to activations (``2N``) but not to the frozen
  weights (the ``2N`` a full fine-tune adds), so ``4N`` instead of the usual ``6N``. LoRA's own matrices add
  ``6 * lora_params`` (trained: forward, input and weight gradients).
* ``A = 2 * seq * d_attn * layers`` is causal attention's forward (``QK^T`` and ``AV``, half the square masked);
  forward + backward = ``3A``. For packed or varying lengths ``seq`` is the token-weighted mean sequence length
  ``sum(s^2) / sum(s)`` -- attention cost follows each sequence's own length, never the pack's.

Recomputation under gradient checkpointing is *not* counted (it is overhead, not model work), and neither is
padding: tokens/s and MFU are computed on real tokens, so two runs over the same data compare like for like.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable

# Dense (no sparsity) tensor-core peak FLOP/s in bf16 (fp16 where the card has no bf16), from vendor data sheets.
# Longer names first: the first substring found in the device name wins.
PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("GB200", 2450e12), ("B200", 2250e12), ("B100", 1750e12),
    ("GH200", 989e12), ("H200", 989e12), ("H100 NVL", 835e12), ("H100 PCIe", 756e12), ("H100", 989e12),
    ("H800", 989e12), ("H20", 148e12),
    ("A100", 312e12), ("A800", 312e12), ("A40", 150e12), ("A30", 165e12), ("A10G", 70e12), ("A10", 125e12),
    ("L40S", 362e12), ("L40", 181e12), ("L4", 121e12),
    ("RTX 5090", 210e12), ("RTX 4090", 165e12), ("RTX 4080", 97e12), ("RTX 3090", 71e12), ("RTX A6000", 155e12),
    ("RTX 6000 Ada", 364e12), ("V100", 125e12), ("T4", 65e12),
)
CPU_FLOPS_PER_CYCLE = 32  # fp32: two AVX2 FMA units x 8 lanes x 2 (64 with AVX-512)


@dataclass(frozen=True)
class Peak:
    flops: float
    source: str


def peak_flops(device_name: str | None = None, *, device: str | None = None) -> Peak:
    """Peak FLOP/s of the device running training.

    Args:
        device_name: a GPU name as ``torch.cuda.get_device_name()`` reports it; None detects it (CPU if no GPU).
        device: ``cuda`` or ``cpu``; None detects.
    """
    if device_name is None and device != "cpu":
        try:
            import torch

            if torch.cuda.is_available():
                device_name = torch.cuda.get_device_name(0)
        except Exception:  # noqa: BLE001
            device_name = None
    if device_name and device != "cpu":
        upper = device_name.upper()
        for key, flops in PEAK_FLOPS:
            if key.upper() in upper:
                return Peak(flops, f"{key} bf16 dense peak {flops / 1e12:.0f} TFLOP/s")
        return Peak(0.0, f"unknown GPU {device_name!r}: no peak figure, MFU not shown")
    return cpu_peak()


def cpu_peak() -> Peak:
    """A rough fp32 peak for the CPU threads torch uses (cores x clock x FLOPs/cycle)."""
    threads = 1
    try:
        import torch

        threads = torch.get_num_threads()
    except Exception:  # noqa: BLE001
        threads = os.cpu_count() or 1
    ghz, per_cycle = 2.5, CPU_FLOPS_PER_CYCLE
    try:
        text = open("/proc/cpuinfo", encoding="utf-8", errors="replace").read()
        if " avx512f" in text:
            per_cycle = 64
        for line in text.splitlines():
            if line.startswith("cpu MHz"):
                ghz = float(line.split(":")[1]) / 1000
                break
    except (OSError, ValueError):
        pass
    flops = threads * ghz * 1e9 * per_cycle
    return Peak(flops, f"CPU estimate: {threads} threads x {ghz:.1f} GHz x {per_cycle} FLOP/cycle (fp32)")


def matmul_params(model_config: Any) -> int:
    """``N``: parameters that take part in a matmul per token (linear layers and the LM head)."""
    from studio.modeling import _linear_shapes, arch_of

    a = arch_of(model_config)
    per_layer = sum(i * o for _, i, o in _linear_shapes(a))
    return per_layer * a.num_hidden_layers + a.vocab_size * a.hidden_size


def attention_dims(model_config: Any) -> tuple[int, int]:
    """``(d_attn, layers)``: query width (heads x head_dim) and decoder layers."""
    from studio.modeling import arch_of

    a = arch_of(model_config)
    return a.num_attention_heads * a.head_dim, a.num_hidden_layers


def effective_seq(lengths: Iterable[int]) -> float:
    """Token-weighted mean sequence length ``sum(s^2) / sum(s)`` (what attention cost per token follows)."""
    lengths = [int(s) for s in lengths if s > 0]
    total = sum(lengths)
    return sum(s * s for s in lengths) / total if total else 0.0


def flops_per_token(model_config: Any, seq: float, *, lora: bool = True, lora_params: int = 0) -> float:
    """Model FLOPs per trained token: ``4N + 3A`` (+ ``6 * lora_params``) for LoRA, ``6N + 3A`` for full tuning."""
    n = matmul_params(model_config)
    d_attn, layers = attention_dims(model_config)
    a = 2 * seq * d_attn * layers
    return (4 * n if lora else 6 * n) + 3 * a + 6 * lora_params


def mfu(tokens_per_s: float, flops_per_tok: float, peak: float | Peak) -> float:
    """Model FLOPs utilisation in [0, 1] (0 when the peak is unknown)."""
    p = peak.flops if isinstance(peak, Peak) else peak
    return tokens_per_s * flops_per_tok / p if p > 0 else 0.0


def batch_token_counts(inputs: dict[str, Any]) -> tuple[int, int, list[int]]:
    """``(real_tokens, positions, sequence_lengths)`` of one collated training batch.

    Padded batches count ``attention_mask``; padding-free batches (TRL's packing collator) count the flattened row,
    with sequence lengths from ``cu_seq_lens_q`` (or the restarts of ``position_ids``).
    """
    mask = inputs.get("attention_mask")
    ids = inputs.get("input_ids")
    positions = int(ids.numel()) if ids is not None else 0
    if mask is not None and getattr(mask, "dim", lambda: 0)() == 2:
        lens = [int(x) for x in mask.sum(-1).tolist()]
        return sum(lens), positions, lens
    cu = inputs.get("cu_seq_lens_q")
    if cu is not None:
        lens = [int(x) for x in cu.diff().tolist()]
        return sum(lens), positions, lens
    pos = inputs.get("position_ids")
    if pos is not None:
        starts = (pos[0] == 0).nonzero().flatten().tolist() + [pos.shape[-1]]
        lens = [b - a for a, b in zip(starts, starts[1:])]
        return sum(lens), positions, lens
    return positions, positions, [positions]


def batch_token_sums(inputs: dict[str, Any]) -> tuple[Any, int, Any]:
    """``(real_tokens, positions, sum_of_squared_sequence_lengths)`` of one collated batch, without a device sync.

    The same counts as :func:`batch_token_counts`, but the two sums stay tensors on the batch's device (call
    ``int()`` when reading them, e.g. once per logging step), so counting every micro-batch never stalls the GPU.
    For padding-free rows the squared lengths come from the positions: ``sum(2p + 1 for p < s) = s**2``.
    """
    mask = inputs.get("attention_mask")
    ids = inputs.get("input_ids")
    positions = int(ids.numel()) if ids is not None else 0
    if mask is not None and getattr(mask, "dim", lambda: 0)() == 2:
        lens = mask.sum(-1)
        return lens.sum(), positions, (lens * lens).sum()
    cu = inputs.get("cu_seq_lens_q")
    if cu is not None:
        lens = cu.diff()
        return lens.sum(), positions, (lens * lens).sum()
    pos = inputs.get("position_ids")
    if pos is not None:  # packed rows (studio.speed.packrows) carry their real count; the pad tail counts in sum_sq
        real = inputs.get("studio_real_tokens")
        return real if real is not None else int(pos.numel()), positions, (2 * pos + 1).sum()
    return positions, positions, positions * positions


class TokenWindow:
    """Token sums of the micro-batches since the last read (:func:`batch_token_sums`); tensors until :meth:`take`."""

    def __init__(self) -> None:
        self.real: Any = 0
        self.positions = 0
        self.sq: Any = 0
        self.batches = 0

    def add(self, inputs: dict[str, Any]) -> None:
        real, positions, sq = batch_token_sums(inputs)
        self.real = self.real + real
        self.positions += positions
        self.sq = self.sq + sq
        self.batches += 1

    def take(self) -> tuple[int, int, int]:
        """``(real, positions, sum_sq)`` as ints (one device sync), and start a new window."""
        out = int(self.real), int(self.positions), int(self.sq)
        self.real, self.positions, self.sq, self.batches = 0, 0, 0, 0
        return out


class SpeedMeter:
    """Running real tokens/s, padding share and MFU for the live Train tab.

    Feed it each batch's counts (:func:`batch_token_counts`) and the step time; read :meth:`snapshot`.
    """

    def __init__(self, model_config: Any, *, peak: Peak | None = None, lora_params: int = 0) -> None:
        self.model_config = model_config
        self.peak = peak or peak_flops()
        self.lora_params = lora_params
        self.real = self.positions = 0
        self.sq = 0
        self.seconds = 0.0

    def add(self, real: int, positions: int, lengths: list[int], seconds: float) -> None:
        self.real += real
        self.positions += positions
        self.sq += sum(s * s for s in lengths)
        self.seconds += max(seconds, 0.0)

    def add_sums(self, real: int, positions: int, sum_sq: int, seconds: float) -> None:
        """Like :meth:`add`, with the squared sequence lengths already summed (:meth:`TokenWindow.take`)."""
        self.real += real
        self.positions += positions
        self.sq += sum_sq
        self.seconds += max(seconds, 0.0)

    def snapshot(self) -> dict[str, float]:
        tps = self.real / self.seconds if self.seconds > 0 else 0.0
        seq = self.sq / self.real if self.real else 0.0
        fpt = flops_per_token(self.model_config, seq, lora_params=self.lora_params)
        return {"tokens_per_s": round(tps, 1),
                "padding_share": round(1 - self.real / self.positions, 4) if self.positions else 0.0,
                "mfu": round(mfu(tps, fpt, self.peak), 4)}
