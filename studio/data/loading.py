"""Load datasets from the Hub, local files or save_to_disk folders, with errors a person can act on."""
from __future__ import annotations

import csv
import io
import itertools
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from studio.errors import DataError, hub_unreachable
from studio.imports import ml_libs

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

    from studio.config import SourceConfig

FILE_KINDS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json",
              ".parquet": "parquet", ".txt": "text"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def describe_kind(path: str) -> str:
    """'file', 'folder' or 'hub' for a source path (without loading it)."""
    p = Path(path).expanduser()
    if p.is_dir():
        return "folder"
    if p.exists():
        return "file"
    if Path(path).suffix.lower() in FILE_KINDS or path.startswith((".", "/", "~")):
        raise DataError(f"file not found: {path}")
    if not _HUB_ID.match(path):
        raise DataError(f"{path!r} is neither an existing file nor a Hub dataset id like 'owner/name'")
    return "hub"


def load_source(src: "SourceConfig") -> "Dataset":
    """Load one source as a ``datasets.Dataset``.

    Raises:
        DataError: the file is missing, empty, not UTF-8, malformed (with the line), or the Hub is unreachable.
    """
    kind = describe_kind(src.path)
    if kind == "hub":
        return _load_hub(src)
    path = Path(src.path).expanduser()
    if kind == "folder":
        return _load_folder(path, src.split)
    return _load_file(path)


def _load_file(path: Path) -> "Dataset":
    _, datasets = ml_libs()

    builder = FILE_KINDS.get(path.suffix.lower())
    if builder is None:
        raise DataError(f"{path.name}: unsupported file type {path.suffix or '(none)'}; use csv, tsv, json, "
                        f"jsonl, parquet or txt")
    if path.stat().st_size == 0:
        raise DataError(f"{path.name} is empty")
    if builder != "parquet":
        _check_text_file(path, builder)
    kwargs: dict[str, Any] = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
    if path.suffix.lower() == ".csv":
        from studio.data.checks import csv_delimiter

        delimiter = csv_delimiter(path)
        if delimiter != ",":
            kwargs["delimiter"] = delimiter
    try:
        ds = datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types; we explain in one line
        raise DataError(f"{path.name} could not be read as {builder}: {_first_line(exc)}") from None
    if len(ds) == 0:
        raise DataError(f"{path.name} has no rows")
    if builder == "csv" and len(ds.column_names) == 1 and any(d in ds.column_names[0] for d in ";\t|"):
        raise DataError(f"{path.name} was read as one column named {ds.column_names[0]!r}: its delimiter is not "
                        f"clear; use commas (or tabs in a .tsv file) between columns")
    return ds


def _check_text_file(path: Path, builder: str) -> None:
    """Stream the file once: non-UTF-8 bytes and malformed JSON lines are named by line number."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path.name} line {lineno}: bytes that are not UTF-8 (at byte {exc.start}); "
                                f"re-save the file as UTF-8") from None
            if builder == "json" and path.suffix.lower() != ".json" and line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path.name} line {lineno}: malformed JSON ({exc.msg} at column "
                                    f"{exc.colno})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path.name} line {lineno}: each line must be a JSON object, got "
                                    f"{type(row).__name__}")
    if builder == "json" and path.suffix.lower() == ".json":
        head = path.read_text(encoding="utf-8", errors="replace")[:1].strip() if path.stat().st_size < 2e8 else "["
        if head not in ("[", "{"):
            raise DataError(f"{path.name}: a .json file must hold a list of objects (or one object per line)")
    nonblank = sum(1 for _ in itertools.islice(_nonblank(path), 2))
    if not nonblank:
        raise DataError(f"{path.name} is empty")
    if builder == "csv" and nonblank == 1:
        raise DataError(f"{path.name} has a header line but no rows")


def _nonblank(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        yield from (line for line in fh if line.strip())


def _load_folder(path: Path, split: str) -> "Dataset":
    _, datasets = ml_libs()

    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists() \
            or (path / "state.json").exists():
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"{path} is not a readable save_to_disk folder: {_first_line(exc)}") from None
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(f"{path} has no split {split!r}; splits: {', '.join(loaded)}")
            return loaded[split]
        return loaded
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in FILE_KINDS)
    if not files:
        raise DataError(f"{path} holds no dataset files (csv, json, jsonl, parquet, txt) and no save_to_disk data")
    parts = [_load_file(f) for f in files]
    shapes = {tuple(sorted(p.column_names)) for p in parts}
    if len(shapes) > 1:
        described = "; ".join(f"{f.name} has {', '.join(p.column_names)}" for f, p in zip(files, parts))
        raise DataError(f"the files in {path} have different columns ({described[:300]}); keep one layout per "
                        f"folder or list the files as separate sources with their own column mapping")
    try:
        return datasets.concatenate_datasets(parts)
    except ValueError as exc:
        raise DataError(f"the files in {path} have different columns: {_first_line(exc)}") from None


def _load_hub(src: "SourceConfig") -> "Dataset":
    _, datasets = ml_libs()

    try:
        kwargs = {"revision": src.revision} if getattr(src, "revision", None) else {}
        return datasets.load_dataset(src.path, src.name, split=src.split, **kwargs)
    except Exception as exc:  # noqa: BLE001
        text = f"{type(exc).__name__}: {exc}"
        if hub_unreachable(exc):
            raise DataError(f"can't reach the Hugging Face Hub to load {src.path!r}; download it where you have "
                            f"internet, or pick a local file (csv, json, jsonl, parquet)") from None
        if "split" in text.lower() and src.split:
            raise DataError(f"{src.path}: no split {src.split!r} ({_first_line(exc)})") from None
        raise DataError(f"{src.path}: could not load from the Hub: {_first_line(exc)}") from None


def peek_rows(path: str, n: int = 5) -> list[dict[str, Any]]:
    """The first ``n`` rows of a local file without reading the rest (for quick previews)."""
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        with p.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in itertools.islice((ln for ln in fh if ln.strip()), n)]
    if suffix in (".csv", ".tsv"):
        with p.open(encoding="utf-8", newline="") as fh:
            from studio.data.checks import csv_delimiter

            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else csv_delimiter(p))
            return [dict(r) for r in itertools.islice(reader, n)]
    if suffix == ".txt":
        with p.open(encoding="utf-8") as fh:
            return [{"text": line.rstrip("\n")} for line in itertools.islice(fh, n)]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        batch = next(pq.ParquetFile(p).iter_batches(batch_size=n), None)
        return batch.to_pylist() if batch is not None else []
    from studio.config import SourceConfig

    ds = load_source(SourceConfig(path=path))
    return [ds[i] for i in range(min(n, len(ds)))]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return io.StringIO(text).readline().strip()[:300]
