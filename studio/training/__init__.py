"""The training engine: ``TrainingJob`` runs TRL's SFTTrainer (+ peft LoRA), inline (``studio train``, the app's
child process: ``launcher``/``follower``) or in a daemon thread.

A TrainerCallback turns the trainer's logs into events (studio.events) appended to the job's EventLog, which is
mirrored to the run directory's events.jsonl. Stop sets a ``threading.Event`` that the callback turns into
``control.should_training_stop`` (plus a checkpoint), then the adapter is saved. Any failure, out-of-memory
included, becomes a ``Failed`` event with a readable message and a concrete suggestion; the traceback goes to
train.log, the run directory and last checkpoint are kept, and memory is released (and the release measured).

Typical use (UI and CLI alike)::

    job = TrainingJob(cfg, runs_dir).start()
    events, cursor = job.events.since(cursor)   # poll
    job.stop()                                   # graceful

Files: ``job`` (TrainingJob), ``state`` (RunState: what the job and its callback share; JobStatus),
``callbacks`` (the TrainerCallback and SFTTrainer subclass),
``failures`` (is_oom, explain_failure), ``memory`` (memory_now, release_memory), ``args`` (sft_args,
default_callbacks).
"""
from __future__ import annotations

from studio.training.args import default_callbacks, sft_args
from studio.training.failures import explain_failure, is_oom
from studio.training.job import TrainingJob, start_job
from studio.training.memory import memory_now, release_memory
from studio.training.state import JobStatus, RunState

__all__ = ["JobStatus", "RunState", "TrainingJob", "default_callbacks", "explain_failure", "is_oom", "memory_now",
           "release_memory", "sft_args", "start_job"]
