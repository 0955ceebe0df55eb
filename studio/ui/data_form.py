"""The Data tab's widgets <-> ``DataConfig`` (every source, with its weight) plus ``train.max_length``/``loss_on``.

Used by ``forms.Forms`` (which re-exports the names the tabs use); no gradio here either.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.config import DataConfig, RunConfig, SourceConfig, TrainConfig
from studio.data.formats import EXTRA_ROLES, ROLES
from studio.errors import ConfigError
from studio.paths import ASSETS
from studio.templates import NAMED_TEMPLATES
from studio.ui.widgets import Component, _blank, from_widget

DATASETS_DIR = ASSETS / "datasets"

SOURCE_SAMPLE = "Bundled sample"
SOURCE_UPLOAD = "Upload a file"
SOURCE_PATH = "Hub id or local path"
SOURCE_KINDS = (SOURCE_SAMPLE, SOURCE_UPLOAD, SOURCE_PATH)

CHAT_TEMPLATE = "(chat template)"
CUSTOM_TEMPLATE = "(custom)"
TEMPLATE_CHOICES = (CHAT_TEMPLATE, *NAMED_TEMPLATES, CUSTOM_TEMPLATE)

MAPPING_ROLES: tuple[str, ...] = tuple(dict.fromkeys([*(r for roles in ROLES.values() for r in roles),
                                                     *EXTRA_ROLES]))
"""Every role a column can be mapped to (one dropdown each; the format decides which are shown)."""

EXTRA_SOURCE_HEADERS = ("path", "split", "config name", "weight", "columns (role=column, …)")


def bundled_samples() -> list[str]:
    """File names of the bundled datasets."""
    if not DATASETS_DIR.is_dir():
        return []
    return sorted(p.name for p in DATASETS_DIR.iterdir() if p.suffix.lower() in (".csv", ".jsonl", ".json",
                                                                                  ".parquet", ".txt", ".tsv"))


@dataclass
class DataForm:
    """The Data tab's widgets. ``max_length`` and ``loss_on`` live here (they shape the preview) but are
    ``train.*`` settings."""

    source_kind: Component
    sample: Component
    upload: Component
    path: Component
    split: Component
    subset: Component
    format: Component
    mapping: dict[str, Component]
    """role -> column dropdown, for every role in ``MAPPING_ROLES``."""
    template_name: Component
    template: Component
    response_template: Component
    system_prompt: Component
    eval_fraction: Component
    max_rows: Component
    seed: Component
    max_length: Component
    loss_on: Component
    weight: Component = None
    """Sampling weight of the first source."""
    extra_sources: Component = None
    """A table (list of rows ``EXTRA_SOURCE_HEADERS``) of the sources after the first."""

    def components(self) -> list[Component]:
        out = [getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "mapping"]
        return [c for c in out if c is not None] + list(self.mapping.values())


def _template_parts(data: DataConfig) -> tuple[str, str, str]:
    """(template dropdown choice, template text, response template text) showing ``data``."""
    name = (data.template or "").strip()
    if not name:
        return CHAT_TEMPLATE, "", data.response_template or ""
    named = NAMED_TEMPLATES.get(name)
    if named is not None:
        response = data.response_template if data.response_template is not None else (named.response_template or "")
        return name, named.template, response
    match = next((t.name for t in NAMED_TEMPLATES.values() if t.template == data.template), None)
    return (match or CUSTOM_TEMPLATE), data.template, data.response_template or ""


def data_field_values(cfg: RunConfig) -> dict[str, Any]:
    """The Data tab's widget values for ``cfg``, by ``DataForm`` field name (``mapping`` is role -> column)."""
    data = cfg.data
    src = data.sources[0] if data.sources else None
    kind, sample, path, split, subset = SOURCE_SAMPLE, None, "", "train", ""
    if src is not None:
        p = Path(src.path).expanduser()
        if p.parent.resolve() == DATASETS_DIR.resolve() and p.name in bundled_samples():
            sample = p.name
        else:
            kind, path = SOURCE_PATH, src.path
        split, subset = src.split, src.name or ""
    if sample is None and bundled_samples():
        sample = bundled_samples()[0]
    name, template, response = _template_parts(data)
    columns = src.columns if src is not None else {}
    extra = [[s.path, s.split, s.name or "", s.weight, columns_text(s.columns)] for s in data.sources[1:]]
    return {"weight": src.weight if src is not None else 1.0, "extra_sources": extra,
            "source_kind": kind, "sample": sample, "upload": None, "path": path, "split": split, "subset": subset,
            "format": data.format, "mapping": {role: columns.get(role) for role in MAPPING_ROLES},
            "template_name": name, "template": template, "response_template": response,
            "system_prompt": data.system_prompt or "", "eval_fraction": data.eval_fraction,
            "max_rows": data.max_rows, "seed": data.seed, "max_length": cfg.train.max_length,
            "loss_on": cfg.train.loss_on}


def write_data(form: DataForm, cfg: RunConfig) -> dict[Component, Any]:
    """``{widget: value}`` showing ``cfg.data`` (every source) plus ``train.max_length``/``loss_on``."""
    values = data_field_values(cfg)
    out = {getattr(form, name): value for name, value in values.items()
           if name not in ("mapping", "upload") and getattr(form, name) is not None}
    out.update({form.mapping[role]: col for role, col in values["mapping"].items() if role in form.mapping})
    return out


def read_data(form: DataForm, values: dict[Component, Any], base: DataConfig | None = None
              ) -> tuple[DataConfig, dict[str, Any]]:
    """``(DataConfig, {max_length, loss_on})`` from the Data tab's widget values.

    Raises:
        ConfigError: no dataset chosen, or a value out of range.
    """
    base = base or DataConfig()
    kind = values.get(form.source_kind) or SOURCE_SAMPLE
    split, subset = "train", None
    if kind == SOURCE_SAMPLE:
        sample = values.get(form.sample)
        if _blank(sample):
            raise ConfigError("pick a bundled sample dataset, upload a file, or give a Hub id / local path")
        path = str(DATASETS_DIR / sample)
    elif kind == SOURCE_UPLOAD:
        path = _upload_path(values.get(form.upload))
        if not path:
            raise ConfigError("upload a dataset file (csv, json, jsonl, parquet or txt) first")
    else:
        path = (values.get(form.path) or "").strip()
        if not path:
            raise ConfigError("type a Hub dataset id (owner/name) or the path of a local file or folder")
        split = (values.get(form.split) or "train").strip() or "train"
        subset = (values.get(form.subset) or "").strip() or None
    fmt = values.get(form.format) or "auto"
    columns: dict[str, str] = {}
    if fmt != "auto":
        for role in ROLES.get(fmt, ()):
            col = values.get(form.mapping[role])
            if not _blank(col):
                columns[role] = col
    for role in EXTRA_ROLES:  # any format: the reference answer GRPO's rewards compare with
        col = values.get(form.mapping[role]) if role in form.mapping else None
        if not _blank(col):
            columns[role] = col
    name = values.get(form.template_name) or CHAT_TEMPLATE
    text = values.get(form.template) or ""
    response = values.get(form.response_template) or ""
    template: str | None
    if not text.strip():
        template = None
    elif name in NAMED_TEMPLATES and text == NAMED_TEMPLATES[name].template and base.template != text:
        template = name  # a named template stays a name, unless the config spelled it out (kept unchanged)
    else:
        template = text
    response_template: str | None = response if response.strip() else None
    if template in NAMED_TEMPLATES and response_template == NAMED_TEMPLATES[template].response_template \
            and base.response_template != response_template:
        response_template = None
    old = base.sources[0] if base.sources else None
    keep = old is not None and old.path == path
    if form.weight is not None and not _blank(values.get(form.weight)):
        weight = from_widget(SourceConfig, "weight", values.get(form.weight), "data.sources[0]")
    else:
        weight = old.weight if keep else 1.0
    source = SourceConfig(path=path, split=split, name=subset, columns=columns, weight=weight)
    extra = read_extra_sources(values.get(form.extra_sources)) if form.extra_sources is not None \
        else list(base.sources[1:])
    system = values.get(form.system_prompt) or ""
    data = DataConfig(
        sources=[source, *extra],
        format=fmt,
        template=template,
        response_template=response_template,
        system_prompt=system if system.strip() else None,
        eval_fraction=from_widget(DataConfig, "eval_fraction", values.get(form.eval_fraction, base.eval_fraction),
                                  "data"),
        max_rows=from_widget(DataConfig, "max_rows", values.get(form.max_rows, base.max_rows) or None, "data"),
        seed=from_widget(DataConfig, "seed", values.get(form.seed, base.seed), "data"),
    )
    extra = {"max_length": from_widget(TrainConfig, "max_length", values.get(form.max_length), "train"),
             "loss_on": values.get(form.loss_on) or "completion"}
    return data, extra


def _upload_path(value: Any) -> str | None:
    """gr.File gives a path string (type='filepath'), a FileData-like object, or a list of them."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    return str(getattr(value, "path", None) or getattr(value, "name", None) or value)


def columns_text(columns: dict[str, str]) -> str:
    """``{prompt: q, completion: a}`` -> ``"prompt=q, completion=a"`` (the extra-sources table's cell)."""
    return ", ".join(f"{role}={col}" for role, col in columns.items())


def parse_columns(text: str, where: str) -> dict[str, str]:
    """The inverse of :func:`columns_text`.

    Raises:
        ConfigError: an item is not ``role=column`` or names an unknown role.
    """
    out: dict[str, str] = {}
    for item in (text or "").replace(";", ",").split(","):
        if not item.strip():
            continue
        role, sep, col = item.partition("=")
        role, col = role.strip(), col.strip()
        if not sep or not role or not col:
            raise ConfigError(f"{where}: write the columns as role=column, e.g. prompt=question; got {item.strip()!r}")
        if role not in MAPPING_ROLES:
            raise ConfigError(f"{where}: unknown role {role!r}; roles are {', '.join(MAPPING_ROLES)}")
        out[role] = col
    return out


def read_extra_sources(rows: Any) -> list[SourceConfig]:
    """The extra-sources table (rows of ``EXTRA_SOURCE_HEADERS``; blank rows skipped) as SourceConfigs.

    Raises:
        ConfigError: a row without a path, a weight that is not a positive number, bad columns.
    """
    if hasattr(rows, "values") and hasattr(rows, "columns"):  # a pandas DataFrame
        rows = rows.values.tolist()
    out = []
    for i, row in enumerate(rows or [], start=2):
        cells = list(row) + [None] * (len(EXTRA_SOURCE_HEADERS) - len(row))
        path, split, name, weight, cols = cells[:5]
        if _blank(path):  # an empty or half-filled row is ignored until it names a source
            continue
        where = f"data source {i}"
        try:
            w = 1.0 if _blank(weight) else float(weight)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: the weight must be a number, got {weight!r}") from None
        out.append(SourceConfig(path=str(path).strip(), split=str(split or "").strip() or "train",
                                name=None if _blank(name) else str(name).strip(),
                                columns=parse_columns(str(cols or ""), where), weight=w))
    return out


def template_misfits(text: str | None, view: Any) -> bool:
    """Whether a text template names placeholders that neither the previewed data's columns nor its roles supply
    (the bundled sample's ``{Problem}`` kept for an uploaded file with other columns)."""
    from studio.errors import TemplateError
    from studio.templates import placeholders

    if not (text or "").strip() or not getattr(view, "columns", None):
        return False
    try:
        names = set(placeholders(text))
    except TemplateError:
        return True
    known = set(view.columns) | {r for roles in ROLES.values() for r in roles} | {"system"}
    return not names <= known
