"""``Studio``: the one stateful object of the app, shared by every browser session and the CLI.

It holds what is loaded and what runs, behind a lock. Handlers get it explicitly; there are no module-level
mutable globals. One run at a time per runs folder: a second start gets a clear "busy" answer. A run trains in its
own process (:mod:`studio.training.launcher`); the app follows its folder, and a restarted app finds it again.

Lock order (one, everywhere): ``chat_loading`` (the engine cache: held through a model or adapter load) is taken
*before* ``lock`` (the app lock), never inside it; ``lock`` guards only quick reads and swaps of this object's
fields and is never held across slow work (a load, a merge, an upload), so the Train tab's status, Start and Stop
never wait on a Chat model load. ``publishing`` is taken alone.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from studio.paths import default_runs_dir


@dataclass
class Studio:
    """Shared app state. Each area (data, training, chat, hub) keeps its own attribute; use ``lock`` to change them."""

    runs_dir: Path = field(default_factory=default_runs_dir)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    job: Any = None
    """The current or last run: a ``RunProcess`` (its own process, followed through its folder), or a
    ``TrainingJob`` in a thread when Python callbacks were passed to ``start_training``."""
    chat: Any = None
    """The loaded chat engine (studio.inference), reused across requests."""
    extras: dict[str, Any] = field(default_factory=dict)
    app_host: str = "127.0.0.1"
    """Where the app listens: a user's reward code (GRPO) runs only on loopback, never through a shared link."""
    app_share: bool = False
    chat_loading: threading.RLock = field(default_factory=threading.RLock, repr=False)
    """The engine-cache lock: held while a chat model or adapter loads (one load at a time). Taken before ``lock``,
    never while holding it (see the module's lock order)."""
    publishing: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """Held while a push or export runs (one at a time). No Hub token is ever kept here: the state is shared by
    every browser session, so the UI keeps a typed token in its own per-session state and passes it per call."""

    def __post_init__(self) -> None:
        self.runs_dir = Path(self.runs_dir)
        if self.job is None:
            from studio.training.follower import follow_live

            self.job = follow_live(self.runs_dir)  # a run an earlier app started still trains: follow it

    # ------------------------------------------------------------------------------------------------ training
    @property
    def current_job(self) -> Any:
        """The running ``TrainingJob``, or None when nothing runs (the last job stays in ``job``)."""
        with self.lock:
            job = self.job
            return job if job is not None and job.alive else None

    def start_training(self, cfg: Any, *, resume: str | Path | None = None, extra_callbacks: Any = None) -> Any:
        """Start a run in its own ``studio train`` process (``torchrun`` for ``train.processes`` > 1); one run at a
        time per runs folder, across apps and app restarts. Returns its ``RunProcess``.

        ``extra_callbacks`` None: the child's default ones (probe prompts from ``train.probe_prompts``). A list of
        Python callbacks cannot cross into a process: the run then trains in a thread of this process
        (a ``TrainingJob``; scripts and tests).

        Raises:
            BusyError: a run is in progress (the message names its run directory).
            ConfigError: more processes than GPUs, FSDP or DeepSpeed where they cannot run.
            ModelError: the model's weights must come from the Hub, which is out of reach.
            TrainingError: ``resume`` has no checkpoint.
        """
        from studio.errors import BusyError

        with self.lock:
            if self.job is not None and self.job.alive:
                raise BusyError(f"a run is in progress: {self.job.run_dir}")
            if cfg is None and resume is not None:
                from studio.runs import load_run

                cfg = load_run(resume).config
            from studio.modeling.sources import check_reachable

            check_reachable(cfg.model.name_or_path, cfg.model.revision)  # offline Hub: one line now, not a failed run
            if getattr(cfg.train, "method", "sft") == "grpo":
                from studio.rewards import check_user_code_allowed, parse_specs

                check_user_code_allowed(parse_specs(cfg.train.rewards), host=self.app_host, share=self.app_share)
            if self.chat is not None and self.chat.device.startswith("cuda") and cfg.train.device != "cpu":
                self.release_chat()  # the run gets the playground's GPU memory back
            if extra_callbacks is None:
                from studio.training.launcher import launch

                self.job = launch(cfg, self.runs_dir, resume=resume)
                return self.job
            from studio.liveness import live_runs
            from studio.training import TrainingJob

            live = live_runs(self.runs_dir)
            if live:
                raise BusyError(f"a run is in progress: {live[0]}")
            job = TrainingJob(cfg, self.runs_dir, resume=resume, extra_callbacks=extra_callbacks)
            self.job = job.start()
            return job

    def stop_training(self) -> bool:
        """Ask the running job to stop after its current step; False when nothing runs. Takes no lock, so Stop
        never waits on anything else (a load, a merge, an upload)."""
        job = self.job
        if job is None or not job.alive:
            return False
        job.stop()
        return True

    # ---------------------------------------------------------------------------------------------------- chat
    def chat_engine(self, run_dir: str | Path, *, device: str = "auto", quantization: str | None = None) -> Any:
        """The chat engine for ``run_dir``, loaded once and kept in ``self.chat`` (another run replaces it).

        While a run trains on the GPU the playground does not touch the GPU: ``device="cpu"`` loads on the CPU,
        anything else gets a clear "busy" answer, so a chat request never takes memory from the run.

        Raises:
            BusyError: a run is training on the GPU and the engine would use it.
            ModelError: the run's model or adapter can't be loaded.
        """
        from studio.errors import BusyError
        from studio.inference import ChatEngine

        run_dir = Path(run_dir)
        # The slow load holds only ``chat_loading`` (one load at a time), never ``lock``: Stop, Start and the
        # Train tab's poll must not wait for a model to load.
        with self.chat_loading:
            with self.lock:
                job = self.current_job
                engine = self.chat
                stale = engine is not None and not engine.serves(run_dir, device=device, quantization=quantization)
                if stale:
                    self.chat = None
                on_gpu = (engine.device.startswith("cuda") if engine is not None and not stale
                          else device != "cpu" and _gpu())
                if job is not None and _job_on_gpu(job) and on_gpu:
                    if stale:
                        self.chat = engine
                    raise BusyError(f"a run is training on the GPU ({Path(job.run_dir).name}); the playground can "
                                    f"answer when it finishes, or choose the CPU for the playground now")
            if stale:
                engine.close()
                engine = None
            if engine is None:
                engine = ChatEngine.from_run(run_dir, device=device, quantization=quantization)
                with self.lock:
                    self.chat = engine
            return engine

    def release_chat(self) -> None:
        """Unload the chat engine and free its memory (before a training run needs the GPU, for instance)."""
        with self.lock:
            engine, self.chat = self.chat, None
        if engine is not None:
            engine.close()

    # ----------------------------------------------------------------------------------------------------- hub
    def publish(self, run_dir: str | Path, repo_id: str | None = None, token: Any = None, *, private: bool = True,
                merged: bool = False, card: str | None = None, export_dir: str | Path | None = None,
                progress: Any = None, device: str = "auto", gguf: str | None = None, keep_merged: bool = False) -> str:
        """Push a run to ``repo_id`` (returns the repo URL), or only export it into ``export_dir`` (returns the
        folder) when no ``repo_id`` is given. See :func:`studio.hub.push` / :func:`studio.hub.export`.
        ``keep_merged``: with ``gguf``, keep the intermediate merged model (``RUN/export/merged``), as the CLI's
        ``--keep-merged``; by default it is removed once the GGUF is checked (a merged export made before stays).

        A merged export loads a full 16-bit copy of the base: while a run trains on the GPU it needs
        ``device="cpu"``, and the chat engine is released first so its memory is free.

        Raises:
            BusyError: another push/export is running, or a merge would share the GPU with a training run.
            HubError: what went wrong, with the fix.
        """
        from studio.errors import HubError
        from studio.hub import push

        if not repo_id and export_dir is None:
            raise HubError("give a repo id to push to, or a folder to export into")
        if not repo_id:
            return str(self.export_run(run_dir, export_dir, merged=merged, card=card, progress=progress,
                                       device=device, gguf=gguf, keep_merged=keep_merged).path)
        with self._publish_guard(merged or bool(gguf), device):
            return push(run_dir, repo_id, token, private=private, merged=merged, card=card, progress=progress,
                        export_dir=export_dir, device=device, gguf=gguf, keep_merged=keep_merged)

    def export_run(self, run_dir: str | Path, export_dir: str | Path, *, merged: bool = False,
                   card: str | None = None, repo_id: str | None = None, progress: Any = None,
                   device: str = "auto", gguf: str | None = None, keep_merged: bool = False) -> Any:
        """Export a run into a local folder (``studio.hub.export``, or ``export_gguf`` with a ``gguf`` outtype)
        under the same guards as :meth:`publish`; returns the ``ExportResult`` (files, notes, probe check) or the
        ``GGUFExport`` (files, stages, parity check)."""
        from studio.hub import export

        if gguf:
            from studio.hub.gguf_export import export_gguf

            with self._publish_guard(True, device):
                return export_gguf(run_dir, export_dir, gguf, card=card, repo_id=repo_id, device=device,
                                   progress=progress, keep_merged=keep_merged)
        with self._publish_guard(merged, device):
            return export(run_dir, export_dir, merged=merged, card=card, repo_id=repo_id, device=device,
                          progress=progress)

    @contextlib.contextmanager
    def _publish_guard(self, merged: bool, device: str) -> Iterator[None]:
        """One push/export at a time; a merge never shares the GPU with a training run."""
        from studio.errors import BusyError

        if merged:
            job = self.current_job
            if job is not None and _job_on_gpu(job) and device != "cpu":
                raise BusyError(f"a run is training on the GPU ({Path(job.run_dir).name}); merging loads a full "
                                "16-bit copy of the base, so wait for it to finish, merge on the CPU, or publish "
                                "the adapter only")
            if device != "cpu" and _gpu():
                self.release_chat()
        if not self.publishing.acquire(blocking=False):
            raise BusyError("a push or export is already running; wait for it to finish")
        try:
            yield
        finally:
            self.publishing.release()


def _gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _job_on_gpu(job: Any) -> bool:
    """The job uses (or is about to use) the GPU."""
    if getattr(job, "device", "cpu") == "cuda":
        return True
    wanted = getattr(getattr(getattr(job, "cfg", None), "train", None), "device", "cpu")
    return wanted in ("auto", "cuda") and _gpu()
