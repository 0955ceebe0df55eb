"""The GGUF parity check: the metadata read back (chat template, eos), the embedded template applied to each probe
conversation against the trained prompt, and greedy answers of the GGUF (transformers' GGUF loader) against the
merged model. f16/bf16 must give identical tokens; q8_0 reports the first divergence and its logit gap."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

EXACT = ("f16", "bf16")
"""Outtypes that must answer with exactly the merged model's tokens."""
Progress = Callable[[float, str], None]


def _noop(fraction: float, message: str) -> None:
    pass


@dataclass
class ProbeParity:
    """One probe answered by the merged model and by the GGUF."""

    prompt: str
    merged_answer: str
    gguf_answer: str
    same: bool
    agreed_tokens: int
    gap: float | None = None
    """Merged-model logit of its own token minus that of the GGUF's token, at the first difference."""
    template_ok: bool = True


@dataclass
class GGUFCheck:
    """What the check found; :attr:`passed` is False for a broken export."""

    outtype: str
    probes: list[ProbeParity] = field(default_factory=list)
    template_ok: bool = False
    eos_ok: bool = False
    modelfile_ok: bool = False
    problems: list[str] = field(default_factory=list)
    compared: bool = False
    """The answers were compared (skipped when the template or eos is already wrong)."""

    @property
    def identical(self) -> int:
        return sum(p.same for p in self.probes)

    @property
    def passed(self) -> bool:
        if not (self.template_ok and self.eos_ok and self.modelfile_ok and self.probes and self.compared):
            return False
        if self.outtype in EXACT:
            return self.identical == len(self.probes)
        return any(p.same or p.agreed_tokens > 0 for p in self.probes)  # quantized: not garbage from token one

    def summary(self) -> str:
        """``GGUF q8_0: 5/5 probe answers identical to the merged model`` (plus a failure flag)."""
        text = (f"GGUF {self.outtype}: {self.identical}/{len(self.probes)} probe answers identical to the merged model"
                if self.compared else f"GGUF {self.outtype}: answers not compared")
        if not self.template_ok:
            text += "; the embedded chat template does NOT give the trained prompt"
        if not self.eos_ok:
            text += "; the end-of-sequence token is NOT the trained one"
        return text + ("" if self.passed else " (CHECK FAILED)")

    def lines(self) -> list[str]:
        out = []
        for p in self.probes if self.compared else ():
            if p.same:
                out.append(f"{p.prompt[:60]!r}: identical")
            else:
                gap = f", logit gap {p.gap:.3g}" if p.gap is not None and p.gap != float("inf") else ""
                out.append(f"{p.prompt[:60]!r}: first divergence at answer token {p.agreed_tokens + 1}{gap} "
                           f"({p.merged_answer[:50]!r} vs {p.gguf_answer[:50]!r})")
        return out + self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "summary": self.summary()}


def read_metadata(path: Path) -> dict[str, Any]:
    """The GGUF's chat template, eos/bos ids and add-bos flag, read back from the file."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    out: dict[str, Any] = {}
    for key, name in (("tokenizer.chat_template", "chat_template"), ("tokenizer.ggml.eos_token_id", "eos_id"),
                      ("tokenizer.ggml.bos_token_id", "bos_id"), ("tokenizer.ggml.add_bos_token", "add_bos"),
                      ("general.architecture", "architecture")):
        f = reader.fields.get(key)
        out[name] = f.contents() if f is not None else None
    return out


def check_gguf(outfile: Path, merged_dir: Path, fmt: Any, pieces: Any, questions: list[str], outtype: str,
               progress: Progress = _noop) -> GGUFCheck:
    """Template, eos and greedy-answer parity of ``outfile`` against the merged model in ``merged_dir``."""
    import gc

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.hub.merge import compare_answers, greedy
    from studio.inference.prompt import builder_for
    from studio.hub.gguf_template import conversation

    check = GGUFCheck(outtype=outtype)
    tok = AutoTokenizer.from_pretrained(merged_dir)
    builder = builder_for(fmt, tok)
    system = builder.default_system_prompt or None
    meta = read_metadata(outfile)
    eos_id = tok.convert_tokens_to_ids(fmt.eos_token) if fmt.eos_token else tok.eos_token_id
    check.eos_ok = meta["eos_id"] is not None and int(meta["eos_id"]) == eos_id
    if not check.eos_ok:
        check.problems.append(f"the GGUF's eos token id is {meta['eos_id']}, the run trained with {eos_id} "
                              f"({fmt.eos_token!r}): answers would not stop")
    embedded = meta["chat_template"]
    gguf_tok = AutoTokenizer.from_pretrained(outfile.parent, gguf_file=outfile.name)
    prompts: list[list[int]] = []
    modelfile_ok = True
    for q in questions:
        ids = builder.build(q).input_ids
        prompts.append(ids)
        trained = tok.decode(ids, skip_special_tokens=False)
        conv = conversation(q, system)
        ok = False
        if embedded:
            text = gguf_tok.apply_chat_template(conv, chat_template=embedded, tokenize=False,
                                                add_generation_prompt=True)
            bos = (tok.bos_token or "") if meta["add_bos"] and fmt.add_bos else ""
            ok = bos + text == trained and \
                (([tok.bos_token_id] if bos else []) + gguf_tok(text, add_special_tokens=False)["input_ids"]) == ids
        bare = trained[len(tok.bos_token):] if fmt.add_bos and tok.bos_token and trained.startswith(tok.bos_token) \
            else trained
        modelfile_ok = modelfile_ok and pieces.render(conv) == bare
        check.probes.append(ProbeParity(prompt=q, merged_answer="", gguf_answer="", same=False, agreed_tokens=0,
                                        template_ok=ok))
    check.modelfile_ok = modelfile_ok
    check.template_ok = bool(embedded) and all(p.template_ok for p in check.probes)
    if not check.template_ok:
        check.problems.append("the chat template embedded in the GGUF does not render the trained prompt"
                              if embedded else "the GGUF has no chat template")
    if not check.modelfile_ok:
        check.problems.append("the Modelfile TEMPLATE does not render the trained prompt")
    if not (check.template_ok and check.eos_ok):  # broken already: no point comparing answers
        return check
    progress(0.2, f"greedy answers of the merged model to {len(questions)} probes")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype="auto")
    merged.eval()
    reference = [greedy(merged, tok, q, ids) for q, ids in zip(questions, prompts)]
    dtype = merged.dtype
    del merged
    gc.collect()
    progress(0.55, "loading the GGUF through transformers' GGUF loader")
    model = AutoModelForCausalLM.from_pretrained(outfile.parent, gguf_file=outfile.name, dtype=dtype)
    model.eval()
    progress(0.75, f"greedy answers of the GGUF to {len(questions)} probes")
    for probe, q, ids, (ref_ids, ref_logits) in zip(check.probes, questions, prompts, reference):
        got, _ = greedy(model, tok, q, ids)
        agreed, gap = compare_answers(ref_ids, ref_logits, got)
        probe.merged_answer = tok.decode(ref_ids, skip_special_tokens=True)
        probe.gguf_answer = tok.decode(got, skip_special_tokens=True)
        probe.same, probe.agreed_tokens, probe.gap = gap is None, agreed, gap
    check.compared = True
    del model
    gc.collect()
    return check
