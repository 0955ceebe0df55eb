"""Memory measurement and release: ``memory_now`` (CUDA allocated or process RSS) and ``release_memory``."""
from __future__ import annotations

import gc


def memory_now(device: str) -> tuple[int, int]:
    """``(current, peak)`` bytes: CUDA allocated / max allocated, or the process's RSS / peak RSS on CPU."""
    if device == "cuda":
        import torch

        return int(torch.cuda.memory_allocated()), int(torch.cuda.max_memory_allocated())
    try:
        import resource

        import psutil

        rss = psutil.Process().memory_info().rss
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return int(rss), int(max(peak, rss))
    except ImportError:  # pragma: no cover
        return 0, 0


def release_memory(device: str) -> int:
    """``gc.collect()`` + ``torch.cuda.empty_cache()``; returns the bytes released (allocated before - after)."""
    before = memory_now(device)[0]
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
    after = memory_now(device)[0]
    return max(0, before - after)
