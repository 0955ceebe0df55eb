"""The Train tab's status: the status line, the progress bar and the failure box (pure text and HTML, no gradio)."""
from __future__ import annotations

import html
import re
from typing import Any

from studio.formatting import format_seconds, progress_parts

_RAW_ERROR = re.compile(r"^([A-Z]\w*(?:Error|Exception))\b:?\s*(.*)$", re.S)
_KNOWN_FAILURES = (
    (re.compile(r"shape|size mismatch|dimension|must match", re.I), "the model got a tensor of a shape it did not "
     "expect", "Check that the model, its chat template and the LoRA target modules belong together; a shorter "
     "max_length or batch size 1 tells whether the batch shape is the cause."),
    (re.compile(r"\bnan\b|\binf\b", re.I), "the loss or the gradients became NaN",
     "Lower the learning rate (÷10), keep max grad norm on, or use bf16 instead of fp16."),
    (re.compile(r"no space left|disk quota", re.I), "the disk is full", "Free space where the runs are saved."),
    (re.compile(r"cuda|device-side|cublas|cudnn", re.I), "the GPU reported an error",
     "Try again with device cpu to see whether the GPU is the cause."),
)


def failure_view(message: str, suggestion: str = "") -> tuple[str, str, str | None]:
    """``(headline, suggestion, raw line or None)`` for a Failed event: a typed message passes through; a raw
    ``SomeError: ...`` line becomes a sentence with a suggestion, the raw line kept for a details toggle."""
    m = _RAW_ERROR.match(message or "")
    if not m:
        return message, suggestion, None
    kind, rest = m.groups()
    for pattern, head, tip in _KNOWN_FAILURES:
        if pattern.search(rest):
            return f"Training failed: {head}.", tip, message
    return (f"Training failed with an unexpected {kind} inside the training libraries.",
            suggestion or "See train.log in the run folder for the full traceback.", message)


def failure_box(message: str, suggestion: str = "") -> str:
    """Markdown for the error box: the sentence, the suggestion, the raw line behind a details toggle."""
    head, tip, raw = failure_view(message, suggestion)
    text = f"**⚠ {head}**" + (f"\n\n{tip}" if tip else "")
    if raw:
        text += (f"\n\n<details><summary>Details (the raw error)</summary>\n\n<code>{html.escape(raw)}</code>"
                 f"\n\n</details>")
    return text




def status_line(studio: Any, view: Any) -> tuple[str, str, float]:
    """``(state, text, progress 0..1)`` of the job ``view`` (a ``TrainView``) follows."""
    job = studio.job
    if job is None:
        return "idle", "No run yet. Set the hyperparameters and press **Start**.", 0.0
    st = job.status()
    s = view.series
    state = st.state
    step = max(s.step, st.step)
    total = s.total_steps or st.total_steps
    loss = next((v for v in reversed(s.loss) if v is not None), None)
    eta = s.eta_s if s.eta_s is not None else st.eta_s
    if st.message and st.eta_s is not None:  # a phase after the steps (the final evaluation): its own countdown
        eta = st.eta_s
    parts = progress_parts(step, total, loss=loss, eta_s=eta if state in ("running", "stopping") else None)
    accuracy = next((v for v in reversed(s.metrics.get("rewards/accuracies", ())) if v is not None), None)
    if accuracy is not None:
        parts.append(f"reward accuracy {accuracy:.0%}")
    parts.append(f"elapsed {format_seconds(st.elapsed_s)}")
    detail = st.message if state in ("preparing", "running") and st.message else ""  # loading, evaluating...
    icon = {"preparing": "⏳", "running": "🟢", "stopping": "🟠", "finished": "✅", "stopped": "⏹",
            "failed": "❌", "interrupted": "⚠️"}.get(state, "•")
    text = f"{icon} **{state}**{': ' + detail if detail else ''} · " + " · ".join(parts) + f"  \n`{job.run_dir}`"
    if state == "failed" and s.failure:
        text += f"  \n{failure_view(*s.failure)[0]} (details in the box above)"
    elif state in ("finished", "stopped", "failed", "interrupted") and s.message:
        text += f"  \n{s.message}"
    if s.warning and state in ("preparing", "running", "stopping"):
        text += f"  \n⚠️ {s.warning}"
    speed = s.speed_now()
    if speed:
        text += f"  \n⚡ {speed}"
    if s.speed:
        text += "\n\n**Fast path** (what is on, and why):\n" + "\n".join(f"- {_md(line)}" for line in s.speed)
    progress = 1.0 if state == "finished" else (min(1.0, step / total) if total else 0.0)
    return state, text, progress


def _md(text: str) -> str:
    """Plain text for a Markdown list item: ``~`` means "about" here, not strikethrough."""
    return text.replace("~", "≈").replace("*", "\\*")


def progress_html(progress: float, state: str, eta_text: str = "") -> str:
    pct = max(0.0, min(1.0, progress)) * 100
    color = {"failed": "#dc2626", "stopped": "#f59e0b", "finished": "#16a34a"}.get(state, "#2563eb")
    return (f'<div class="studio-progress" role="progressbar" aria-valuenow="{pct:.0f}" aria-valuemin="0" '
            f'aria-valuemax="100" style="background:#e5e7eb;border-radius:6px;height:14px;overflow:hidden">'
            f'<div style="width:{pct:.1f}%;background:{color};height:100%;transition:width .4s"></div></div>'
            f'<div style="font-size:12px;color:#6b7280">{pct:.0f}%{html.escape(eta_text)}</div>')
