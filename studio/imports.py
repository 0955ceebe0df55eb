"""Heavy imports done once, under one lock.

Two browser requests can import transformers at the same moment (the Data tab's preview and the Model tab's
estimate on first page load). ``datasets`` inspects ``transformers.PreTrainedTokenizerBase`` whenever
transformers is in ``sys.modules``, and a half-initialised transformers module then breaks a dataset load.
Every core entry point that needs transformers or datasets calls :func:`ml_libs` first.
"""
from __future__ import annotations

import threading
from types import ModuleType

_IMPORT_LOCK = threading.Lock()


def ml_libs() -> tuple[ModuleType, ModuleType]:
    """``(transformers, datasets)``, fully imported (thread-safe; cheap after the first call)."""
    with _IMPORT_LOCK:
        silence_unactionable()
        import transformers

        transformers.PreTrainedTokenizerBase  # noqa: B018 - resolve the lazy attribute datasets reads
        import datasets

    return transformers, datasets


def quiet_libraries() -> None:
    """Progress bars and warnings of datasets/transformers would interleave with ours (CLI processes only)."""
    import warnings

    try:
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")


UNACTIONABLE_LOGGERS = ("bitsandbytes.backends.cpu.ops", "kernels")
"""Loggers whose warnings a user can't act on: bitsandbytes' "Failed to load CPU gemm_4bit_forward from
kernels-community" (it falls back to its own kernel) and the kernels package's offline trust notice."""


def silence_unactionable() -> None:
    """Only errors from :data:`UNACTIONABLE_LOGGERS` (set before bitsandbytes is imported, in every process)."""
    import logging

    for name in UNACTIONABLE_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
