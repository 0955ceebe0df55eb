"""Held-out evaluation of a run: base vs tuned loss, perplexity and task accuracy on the run's eval split.

The held-out rows are exactly the ones training kept out (``studio.data.split_rows`` with the run's seed). Loss is
taken on the trained tokens of each rendered row, as in training, with the adapter active (tuned) and inside
``model.disable_adapter()`` (base). Accuracy follows the seed's Phi-2 GSM8K evaluation: greedy answers, the final
answer pulled from after ``####`` (or a regex, or the whole answer), compared with the reference's; an answer
with nothing to extract counts as "no clear answer".
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable

from studio.errors import ConfigError, DataError
from studio.formatting import plural

SEPARATOR = "####"
_NUMBER = re.compile(r"(?<![\w.])(-|\u2212)?\s?\$?\s?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\d])")
EXTRACT_MODES = ("####", "regex", "exact")


def normalize_answer(text: str) -> str:
    """A comparable form: the first number (commas, ``$`` and trailing zeros dropped, sign kept), else the
    lower-cased text with spaces collapsed and trailing punctuation removed."""
    m = _NUMBER.search(text)
    if m:
        sign, whole, frac = m.group(1), m.group(2).replace(",", ""), m.group(3) or ""
        try:
            value = Decimal(whole + frac)
        except InvalidOperation:  # pragma: no cover - the pattern only matches digits
            value = None
        if value is not None:
            if sign:
                value = -value
            if value == 0:
                value = Decimal(0)
            out = format(value.normalize(), "f")
            return out
    return " ".join(text.strip().lower().split()).rstrip(".!;:,")


@dataclass(frozen=True)
class AnswerExtractor:
    """How the final answer is pulled out of a text.

    ``mode``: ``####`` (the text after the first non-empty ``####``, as in GSM8K), ``regex`` (``pattern``'s first
    match: group 1 if it has a group, else the whole match), or ``exact`` (the whole answer).
    """

    mode: str = "####"
    pattern: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in EXTRACT_MODES:
            raise ConfigError(f"answer extraction must be one of {', '.join(EXTRACT_MODES)}, got {self.mode!r}")
        if self.mode == "regex":
            if not self.pattern:
                raise ConfigError("regex answer extraction needs a pattern, e.g. 'answer is (\\S+)'")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ConfigError(f"the answer pattern is not a valid regular expression: {exc}") from None

    def extract(self, text: str | None) -> str | None:
        """The normalized final answer, or None when the text has no clear answer."""
        if text is None:
            return None
        if self.mode == "exact":
            value = text.strip()
            return " ".join(value.lower().split()) if value else None
        if self.mode == "regex":
            m = re.search(self.pattern or "", text, flags=re.MULTILINE)
            if m is None:
                return None
            value = m.group(1) if m.groups() else m.group(0)
            return normalize_answer(value) if value and value.strip() else None
        raw = extract_after_separator(text)
        return normalize_answer(raw) if raw is not None else None

    def end_finder(self) -> Callable[[str], int | None] | None:
        """:func:`answer_end` for ``####`` extraction (generation can stop there); None for the other modes."""
        return answer_end if self.mode == "####" else None


def extract_after_separator(text: str, separator: str = SEPARATOR) -> str | None:
    """The first line of text after the first ``####`` that is followed by something (the seed's rule), or None."""
    if separator not in text:
        return None
    for part in text.split(separator)[1:]:
        part = part.strip()
        if part:
            return part.splitlines()[0].strip()
    return None


_LINE_BREAK = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")  # where str.splitlines breaks


def answer_end(text: str, separator: str = SEPARATOR) -> int | None:
    """Where ``text`` can be cut without changing :func:`extract_after_separator`'s answer, once that answer is
    complete: the line break (or next separator) ending the first non-empty ``####`` part; None while no part is
    complete (more text could still extend or supply the answer). Stable as the text grows."""
    at = text.find(separator)
    while at >= 0:
        begin = at + len(separator)
        nxt = text.find(separator, begin)
        stop = nxt if nxt >= 0 else len(text)
        content = next((i for i in range(begin, stop) if not text[i].isspace()), None)
        if content is not None:
            m = _LINE_BREAK.search(text, content, stop)
            return m.start() if m else (nxt if nxt >= 0 else None)
        at = nxt
    return None


@dataclass
class ModelScores:
    """One model's numbers on the held-out rows."""

    loss: float | None = None
    perplexity: float | None = None
    accuracy: float | None = None
    """Correct / rows with a reference answer; None when no row has one."""
    unclear_rate: float | None = None
    """Rows whose output had no extractable answer / rows with a reference answer."""
    correct: int = 0
    unclear: int = 0
    scored: int = 0
    tokens: int = 0

    def summary(self) -> dict[str, Any]:
        return {"loss": self.loss, "perplexity": self.perplexity, "accuracy": self.accuracy,
                "unclear_rate": self.unclear_rate}


@dataclass
class RowResult:
    """One held-out row, base and tuned side by side."""

    index: int
    prompt: str
    reference: str | None
    reference_answer: str | None
    base_output: str | None = None
    base_answer: str | None = None
    base_correct: bool | None = None
    tuned_output: str | None = None
    tuned_answer: str | None = None
    tuned_correct: bool | None = None
    base_loss: float | None = None
    tuned_loss: float | None = None


@dataclass
class EvalReport:
    """Base vs tuned on a run's held-out rows."""

    run_dir: str
    base: ModelScores
    tuned: ModelScores
    rows: int
    per_row: list[RowResult] = field(default_factory=list)
    extractor: AnswerExtractor = field(default_factory=AnswerExtractor)
    adapter: str = ""

    def summary(self) -> dict[str, Any]:
        """``{"base": {...}, "tuned": {...}, "rows": N}`` (what ``studio eval --json`` prints)."""
        return {"base": self.base.summary(), "tuned": self.tuned.summary(), "rows": self.rows}

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "run_dir": self.run_dir, "adapter": self.adapter,
                "extractor": asdict(self.extractor), "counts": {
                    "base": {k: getattr(self.base, k) for k in ("correct", "unclear", "scored", "tokens")},
                    "tuned": {k: getattr(self.tuned, k) for k in ("correct", "unclear", "scored", "tokens")}},
                "per_row": [asdict(r) for r in self.per_row]}

    def table(self) -> list[list[Any]]:
        """Rows of a base-vs-tuned table: metric, base, tuned."""
        def fmt(v: Any, pct: bool = False) -> str:
            if v is None:
                return "n/a"
            return f"{v * 100:.1f}%" if pct else f"{v:.4g}"

        return [["loss", fmt(self.base.loss), fmt(self.tuned.loss)],
                ["perplexity", fmt(self.base.perplexity), fmt(self.tuned.perplexity)],
                ["accuracy", fmt(self.base.accuracy, True), fmt(self.tuned.accuracy, True)],
                ["no clear answer", fmt(self.base.unclear_rate, True), fmt(self.tuned.unclear_rate, True)]]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        return path


def heldout_rows(cfg: Any, loaded: Any = None, run_dir: str | Path | None = None) -> Any:
    """The run's held-out rows (a ``datasets.Dataset``): the ones saved in ``run_dir`` at training start, else
    split again from the data.

    Raises:
        DataError: the run kept no rows out (eval_fraction 0, or fewer than 10 rows).
    """
    from studio.data import load_data, split_rows
    from studio.prompt_format import heldout

    saved = heldout(run_dir) if loaded is None else None
    if saved is not None:
        return saved
    loaded = loaded or load_data(cfg.data)
    _, eval_rows = split_rows(cfg.data, loaded)
    if eval_rows is None or len(eval_rows) == 0:
        raise DataError("this run has no held-out rows (data.eval_fraction is 0 or the data has fewer than 10 "
                        "rows); train with an eval fraction to evaluate")
    return eval_rows


RESULTS_FILE = "eval_results.json"
"""Written into the run directory by every evaluation; the model card reads the latest."""


def evaluate_run(run_dir: str | Path, *, rows: int | None = None, extractor: AnswerExtractor | None = None,
                 max_new_tokens: int | None = None, batch_size: int = 8, engine: Any = None, adapter: str | None = None,
                 device: str = "auto", accuracy: bool = True, stop_at_answer: bool = True,
                 progress: Callable[[float, str], None] | None = None, stop_event: Any = None) -> EvalReport:
    """Score the base model and the run's adapter on the run's held-out rows.

    Args:
        run_dir: the run directory.
        rows: use the first N held-out rows (None: all).
        extractor: how final answers are extracted (default: after ``####``).
        max_new_tokens: answer length for accuracy (greedy decoding); None sizes it to the held-out references
            (their 95th-percentile token length plus a quarter, 64..1024), so no pass runs far past its answers.
        engine: a loaded ``ChatEngine`` to reuse (the playground's), else the run is loaded.
        adapter: which of the engine's adapters is "tuned" (default: the run's own, else the active one).
        accuracy: also generate answers (False: loss and perplexity only).
        stop_at_answer: end each answer where its final answer is complete (the ``#### n`` line), as well as at
            eos; the answers are those of a full-length run cut there (False: generate up to ``max_new_tokens``).
        progress: called with (fraction done, what is running).
        stop_event: a ``threading.Event`` that ends answer generation early.

    Raises:
        DataError: no held-out rows.
        ModelError: the model or adapter can't be loaded.
    """
    from studio import runs
    from studio.config import load_config
    from studio.data import render
    from studio.inference import BASE, ChatEngine, GenerationParams, run_prompt_setup

    run_dir = Path(run_dir)
    extractor = extractor or AnswerExtractor()
    report_progress = progress or (lambda f, m: None)
    cfg = load_config(run_dir / runs.CONFIG)
    if rows is not None and rows < 1:
        raise ConfigError(f"--rows must be >= 1, got {rows}")
    runs.load_heldout(run_dir)  # a damaged file is named before the model loads
    report_progress(0.0, "loading the model")
    engine = engine or ChatEngine.from_run(run_dir, device=device)
    if adapter is None:
        adapter = next((n for n, a in engine.adapters.items() if a.run_dir and Path(a.run_dir) == run_dir),
                       engine.active)
    builder, loaded = run_prompt_setup(cfg, engine.tokenizer, run_dir)
    held = heldout_rows(cfg, loaded, run_dir)
    if rows is not None:
        held = held.select(range(min(rows, len(held))))
    data = [held[i] for i in range(len(held))]
    spec = dataclasses.replace(builder.spec, loss_on=cfg.train.loss_on, max_length=cfg.train.max_length)
    rendered = [render(r, engine.tokenizer, spec, where=f"held-out row {i + 1}") for i, r in enumerate(data)]
    pairs = [(r.input_ids, r.loss_mask) for r in rendered]
    n = len(data)
    steps = 2 + (2 if accuracy else 0)
    done = [0]

    def tick(label: str, total: int = n) -> Callable[[int], None]:
        """Progress of one phase over its ``total`` rows: ``tuned loss: 3/8 rows``."""
        def f(k: int) -> None:
            report_progress(min((done[0] + k / max(total, 1)) / steps, 1.0), f"{label}: {min(k, total)}/{plural(total, 'row')}")
        f(0)
        return f

    per_row: list[RowResult] = []
    prompts, refs = [], []
    for i, row in enumerate(data):
        prompt, reference = builder.for_row(row)
        prompts.append(prompt.input_ids)
        refs.append(reference)
        ref_answer = extractor.extract(reference) if reference is not None else None
        question = _question_text(row, builder)
        per_row.append(RowResult(index=i, prompt=question, reference=reference, reference_answer=ref_answer))

    scores = {}
    for side, name in (("tuned", adapter), ("base", BASE)):
        parts, loss, ppl = engine.loss(pairs, adapter=name, batch_size=max(1, batch_size // 2),
                                       progress=tick(f"{side} loss"))
        done[0] += 1
        s = ModelScores(loss=loss, perplexity=ppl, tokens=sum(p[1] for p in parts))
        for r, (nll, k) in zip(per_row, parts):
            setattr(r, f"{side}_loss", nll / k if k else None)
        scores[side] = s
    scored = [r for r in per_row if r.reference_answer is not None]
    if accuracy and scored:
        if max_new_tokens is None:
            from studio.data.checks import token_budget

            max_new_tokens = token_budget([r.reference for r in scored], engine.tokenizer)
        params = GenerationParams(max_new_tokens=max_new_tokens)
        index = [r.index for r in scored]
        for side, name in (("tuned", adapter), ("base", BASE)):
            outputs = engine.generate_batch([prompts[i] for i in index], params, adapter=name,
                                            batch_size=batch_size, progress=tick(f"{side} answers", len(index)),
                                            stop_event=stop_event,
                                            answer_end=extractor.end_finder() if stop_at_answer else None)
            done[0] += 1
            s = scores[side]
            for i, text in zip(index, outputs):
                r = per_row[i]
                answer = extractor.extract(text)
                correct = answer is not None and answer == r.reference_answer
                setattr(r, f"{side}_output", text)
                setattr(r, f"{side}_answer", answer)
                setattr(r, f"{side}_correct", correct)
                s.correct += int(correct)
                s.unclear += int(answer is None)
            s.scored = len(outputs)
            if s.scored:
                s.accuracy = s.correct / s.scored
                s.unclear_rate = s.unclear / s.scored
    report_progress(1.0, "done")
    report = EvalReport(run_dir=str(run_dir), base=scores["base"], tuned=scores["tuned"], rows=n, per_row=per_row,
                        extractor=extractor, adapter=adapter or "")
    if runs.is_main_process():
        report.save(Path(run_dir) / RESULTS_FILE)  # the model card reads it
    return report


def _question_text(row: dict[str, Any], builder: Any) -> str:
    """The row's question as a person would read it (the last user message, or the prompt column)."""
    from studio.inference.prompt import QUESTION_ROLE

    spec = builder.spec
    if spec.format == "messages" or (builder.uses_chat and spec.format not in QUESTION_ROLE):
        from studio.data import to_messages

        msgs = to_messages(spec.format, row, spec.mapping, None)
        users = [m["content"] for m in msgs if m["role"] == "user"]
        return users[-1] if users else ""
    role = QUESTION_ROLE.get(spec.format)
    return str(row.get(spec.mapping.get(role, ""), "")) if role else ""
