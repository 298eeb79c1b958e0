"""CSV tables: a header row, one target column, and feature columns that are numeric,
categorical (one-hot: one input value per category, named "column=category") or ignored.

``data.columns`` gives a column its type; a column left out is detected (all numbers:
numeric, else categorical). ``data.missing`` says what a missing cell becomes: 'mean' (a
number takes the training rows' mean, a text column keeps its missing cells as the category
"(missing)"), 'mode' (every column takes its most common value in the training rows) or 'drop'
(rows with a missing cell in a used column are left out when the file is read). The source
keeps the cells it fills as NaN until ``TableSource.make_datasets`` knows the training rows,
so no statistic sees the validation rows. ``read_like`` reads a second file (a validation or
test file) with the first file's column types, categories, target classes and fill values.
Problems name the file, the column and the line, and say what to change."""
from __future__ import annotations

import csv
import difflib
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from workbench import fileio
from workbench.data.sources.base import TensorSource
from workbench.errors import WorkbenchError
from workbench.project.settings import DataSettings

MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}
MISSING_CATEGORY = "(missing)"  # the category of a text column's missing cells under data.missing 'mean'
MAX_CATEGORIES = 200  # per text column; more is an id or free text, not a category
MAX_CLASSES_AUTO = 20  # whole-number targets with at most this many values are classes


def is_missing(cell: str) -> bool:
    return cell.lower() in MISSING


@dataclass(frozen=True)
class Column:
    """One feature column as the model sees it: a number, or one value per category."""

    name: str
    kind: str  # "numeric" or "categorical"
    categories: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        return 1 if self.kind == "numeric" else len(self.categories)

    def value_names(self) -> list[str]:
        return [self.name] if self.kind == "numeric" else [f"{self.name}={c}" for c in self.categories]


@dataclass(frozen=True)
class Encoding:
    """How the first file's cells became tensors: the feature columns in input order, the target
    and its classes (None: regression), and the missing-value rule. ``read_like`` applies it to
    another file."""

    file: Path
    target: str
    columns: tuple[Column, ...]
    classes: tuple[str, ...] | None
    class_keys: tuple = ()  # per class: the float (numeric targets) or the text it is read from
    missing: str = "mean"

    @property
    def used(self) -> list[str]:
        """The columns a file must have: the features, then the target."""
        return [c.name for c in self.columns] + [self.target]

    def features(self, file: Path, rows: list[list[str]], lines: list[int]) -> torch.Tensor:
        """Rows holding the ``used`` columns in order -> inputs; cells to fill are NaN."""
        blocks = []
        for j, col in enumerate(self.columns):
            values = [r[j] for r in rows]
            if col.kind == "numeric":
                out = []
                for value, line in zip(values, lines):
                    if is_missing(value):
                        out.append(math.nan)
                        continue
                    number = _number(value)
                    if number is None:
                        raise WorkbenchError(f"{file} line {line}: column {col.name!r} is numeric but holds "
                                             f"{value!r}; fix the cell, or set the column to categorical "
                                             "(or ignore) in the CSV columns (data.columns)")
                    out.append(number)
                blocks.append(torch.tensor(out, dtype=torch.float32)[:, None])
                continue
            index = {c: i for i, c in enumerate(col.categories)}
            block = torch.zeros(len(values), col.width)
            for i, (value, line) in enumerate(zip(values, lines)):
                if is_missing(value):
                    if MISSING_CATEGORY in index:
                        block[i, index[MISSING_CATEGORY]] = 1.0
                    else:
                        block[i] = math.nan  # filled from the training rows
                elif value in index:
                    block[i, index[value]] = 1.0
                else:
                    shown = ", ".join(map(repr, col.categories[:8])) + (", ..." if col.width > 8 else "")
                    raise WorkbenchError(f"{file} line {line}: column {col.name!r} holds {value!r}, a category "
                                         f"{self.file.name} does not have ({shown}); use one of them, or "
                                         "ignore the column")
            blocks.append(block)
        return torch.cat(blocks, dim=1)

    def targets(self, file: Path, rows: list[list[str]], lines: list[int]) -> torch.Tensor:
        """The target cells (last of the ``used`` columns) of another file -> targets."""
        values = [r[-1] for r in rows]
        _check_target_cells(file, self.target, values, lines)
        if self.classes is None:
            numbers = [_number(v) for v in values]
            bad = next(((v, line) for v, n, line in zip(values, numbers, lines) if n is None), None)
            if bad is not None:
                raise WorkbenchError(f"{file} line {bad[1]}: regression needs a numeric target but column "
                                     f"{self.target!r} holds {bad[0]!r}; fix the value")
            return torch.tensor(numbers, dtype=torch.float32)[:, None]
        index = {k: i for i, k in enumerate(self.class_keys)}
        codes = []
        for value, line in zip(values, lines):
            key = _number(value) if self.class_keys and isinstance(self.class_keys[0], float) else value
            if key not in index:
                raise WorkbenchError(f"{file} line {line}: target column {self.target!r} holds {value!r}, a class "
                                     f"{self.file.name} does not have ({', '.join(self.classes)})")
            codes.append(index[key])
        return torch.tensor(codes, dtype=torch.long)

    def fill_values(self, x_train: torch.Tensor) -> torch.Tensor:
        """One value per input value for the NaN cells, from the training rows: a numeric column's
        mean ('mean') or most common value ('mode'); a category column's most common category."""
        fill, at = [], 0
        for col in self.columns:
            block = x_train[:, at:at + col.width]
            at += col.width
            present = block[~torch.isnan(block[:, 0])] if len(block) else block
            if col.kind == "numeric":
                if not len(present):
                    fill.append(0.0)
                elif self.missing == "mode":
                    counts = Counter(present[:, 0].tolist())
                    fill.append(min(counts, key=lambda v: (-counts[v], v)))
                else:
                    fill.append(float(present[:, 0].double().mean()))
                continue
            onehot = [0.0] * col.width
            onehot[int(torch.argmax(present.sum(dim=0))) if len(present) else 0] = 1.0  # first of equals
            fill.extend(onehot)
        return torch.tensor(fill, dtype=torch.float32)


def filled(x: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isnan(x), fill.expand_as(x), x)


@dataclass
class TableSource(TensorSource):
    """A CSV file's examples; cells to fill stay NaN in ``x`` until the split is known."""

    encoding: Encoding | None = None

    def make_datasets(self, train_idx: list[int], val_idx: list[int], settings: DataSettings):
        x = self.x
        if self.encoding is not None and torch.isnan(x).any():
            x = filled(x, self.encoding.fill_values(x[torch.as_tensor(train_idx, dtype=torch.long)]))
        plain = TensorSource(self.name, x, self.y, self.class_names, val_x=self.val_x, val_y=self.val_y,
                             feature_names=self.feature_names)
        return plain.make_datasets(train_idx, val_idx, settings)


def read_csv(settings: DataSettings) -> TableSource:
    """The table at ``settings.path``: ``settings.target`` names the column to predict (default: the
    last one), ``settings.task`` says classification, regression or auto, ``settings.columns`` the
    column types and ``settings.missing`` what missing cells become."""
    file = Path(settings.path).expanduser()
    header, rows, lines = _read_rows(file)
    target = settings.target if settings.target is not None else header[-1]
    _known(file, header, target)
    types = dict(settings.columns or {})
    for name in types:
        _known(file, header, name, setting="the CSV columns (data.columns) name")
    task = _target_task(file, target, types.get(target), settings.task)
    features = [h for h in header if h != target and types.get(h) != "ignore"]
    if not features:
        raise WorkbenchError(f"{file}: the table has no feature columns besides the target {target!r}"
                             + (" (the others are set to ignore)" if len(header) > 1 else "") + "; add or "
                             "use feature columns")
    at = {h: i for i, h in enumerate(header)}
    for name in features + [target]:
        values = [r[at[name]] for r in rows]
        if all(is_missing(v) for v in values):
            what = "the target column" if name == target else "column"
            raise WorkbenchError(f"{file}: {what} {name!r} is empty in every row; "
                                 + ("choose another target" if name == target else
                                    "set it to ignore in the CSV columns (data.columns)") + " or fill it")
        if types.get(name) != "categorical":
            _check_finite(file, name, values, lines)
    rows = [[r[at[name]] for name in features + [target]] for r in rows]  # the used columns, target last
    if settings.missing == "drop":
        kept = [(r, line) for r, line in zip(rows, lines) if not any(is_missing(c) for c in r)]
        if len(kept) < 2:
            raise WorkbenchError(f"{file}: data.missing is 'drop' and {len(kept)} of {len(rows)} rows have no "
                                 "missing cell; training needs at least 2: set missing values to mean or mode, "
                                 "or ignore the columns with gaps")
        rows, lines = [r for r, _ in kept], [line for _, line in kept]
    columns = tuple(_column(file, name, [r[j] for r in rows], lines, types.get(name), settings.missing)
                    for j, name in enumerate(features))
    y, classes, keys = _encode_target(file, target, [r[-1] for r in rows], lines, task)
    encoding = Encoding(file, target, columns, None if classes is None else tuple(classes), keys, settings.missing)
    x = encoding.features(file, rows, lines)
    names = [n for c in columns for n in c.value_names()]
    return TableSource(f"{file.name} (target {target!r})", x, y, classes, feature_names=names, encoding=encoding)


def read_like(path: str | Path, source: TableSource,
              train_idx: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Another CSV file (a validation or test file) read as ``source``'s file was: the same feature
    columns (found by name, in any order; others ignored), types, categories and target classes;
    missing cells filled with values from ``source``'s training rows ``train_idx`` (None: all of its
    rows), or their rows left out under 'drop'. ``x`` is not normalised: it is in ``source.x``'s
    units, so the training statistics (``make_datasets``' stats) apply to it."""
    encoding = source.encoding
    if encoding is None:
        raise WorkbenchError(f"{source.name} was not read from a CSV file")
    file = Path(path).expanduser()
    header, rows, lines = _read_rows(file, least=1)
    for name in encoding.used:
        if name not in header:
            close = difflib.get_close_matches(name, header, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise WorkbenchError(f"{file}: no column {name!r}{hint}, which {encoding.file.name} has; every "
                                 "file of a project needs the same columns")
    at = {h: i for i, h in enumerate(header)}
    rows = [[r[at[name]] for name in encoding.used] for r in rows]
    for j, col in enumerate(encoding.columns):
        if col.kind == "numeric":
            _check_finite(file, col.name, [r[j] for r in rows], lines)
    if encoding.missing == "drop":
        kept = [(r, line) for r, line in zip(rows, lines) if not any(is_missing(c) for c in r)]
        if not kept:
            raise WorkbenchError(f"{file}: data.missing is 'drop' and every row has a missing cell; set missing "
                                 "values to mean or mode")
        rows, lines = [r for r, _ in kept], [line for _, line in kept]
    x = encoding.features(file, rows, lines)
    y = encoding.targets(file, rows, lines)
    if torch.isnan(x).any():
        train = source.x if train_idx is None else source.x[torch.as_tensor(list(train_idx), dtype=torch.long)]
        x = filled(x, encoding.fill_values(train))
    return x, y


@dataclass(frozen=True)
class ColumnReport:
    """One column of a file as the window's CSV Columns dialog lists it."""

    name: str
    detected: str  # "numeric", "categorical", or "empty" (every cell missing)
    missing: int  # cells missing
    distinct: int  # different values present
    as_target: str  # what data.task 'auto' makes of it as the target: "classification" or "regression"


def column_report(path: str | Path) -> list[ColumnReport]:
    """Each column's detected type, missing cells and distinct values (reads the whole file: call it
    off the UI thread)."""
    file = Path(path).expanduser()
    header, rows, _lines = _read_rows(file, least=1)
    out = []
    for j, name in enumerate(header):
        present = [r[j] for r in rows if not is_missing(r[j])]
        numbers = [_number(v) for v in present]
        numeric = bool(present) and all(n is not None for n in numbers)
        distinct = len(set(numbers if numeric else present))
        classes = not numeric or (all(float(n).is_integer() for n in numbers) and distinct <= MAX_CLASSES_AUTO)
        out.append(ColumnReport(name, "empty" if not present else "numeric" if numeric else "categorical",
                                len(rows) - len(present), distinct,
                                "classification" if classes else "regression"))
    return out


def _known(file: Path, header: list[str], name: str, setting: str = "data.target names") -> None:
    if name not in header:
        close = difflib.get_close_matches(name, header, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        lead = "no column" if setting.startswith("data.target") else f"{setting} column"
        raise WorkbenchError(f"{file}: {lead} {name!r}" + (", which the file does not have" if lead != "no column"
                                                           else "")
                             + f"; {hint}columns are {', '.join(map(repr, header))}")


def _target_task(file: Path, target: str, kind: str | None, task: str) -> str:
    """data.task, with the target's type in data.columns deciding 'auto'."""
    if kind == "ignore":
        raise WorkbenchError(f"{file}: the target column {target!r} is set to ignore in the CSV columns "
                             "(data.columns); give it a type or choose another target")
    if kind == "categorical" and task == "regression":
        raise WorkbenchError(f"{file}: the target column {target!r} is set to categorical but data.task is "
                             "regression; set the task to classification, or the column to numeric")
    if task == "auto" and kind is not None:
        return "classification" if kind == "categorical" else "regression"
    return task


def _column(file: Path, name: str, values: list[str], lines: list[int], kind: str | None,
            missing: str) -> Column:
    """A feature column's type (given or detected) and categories."""
    present = [(v, line) for v, line in zip(values, lines) if not is_missing(v)]
    text = next(((v, line) for v, line in present if _number(v) is None), None)
    if kind == "numeric" and text is not None:
        raise WorkbenchError(f"{file} line {text[1]}: column {name!r} is set to numeric but holds {text[0]!r}; "
                             "set it to categorical (or ignore) in the CSV columns (data.columns), or fix the cell")
    if kind == "numeric" or (kind is None and text is None):
        return Column(name, "numeric")
    cats = sorted({v for v, _ in present} | ({MISSING_CATEGORY} if missing == "mean" and len(present) < len(values)
                                             else set()))
    if len(cats) > MAX_CATEGORIES:
        raise WorkbenchError(f"{file}: column {name!r} has {len(cats)} different text values (an id or free "
                             f"text?); a category column may have at most {MAX_CATEGORIES}: set it to ignore "
                             "or turn it into numbers")
    return Column(name, "categorical", tuple(cats))


def _read_rows(file: Path, least: int = 2) -> tuple[list[str], list[list[str]], list[int]]:
    """The header, the data rows (at least ``least``) and each data row's line number in the file."""
    fileio.regular_file(file, "CSV file")  # a FIFO would block the read forever
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise WorkbenchError(f"CSV file {file} does not exist; check data.path") from None
    except IsADirectoryError:
        raise WorkbenchError(f"{file} is a folder; data.path must name a .csv file") from None
    except UnicodeDecodeError:
        raise WorkbenchError(f"{file} is not UTF-8 text; save it as a UTF-8 CSV file") from None
    except OSError as exc:
        raise WorkbenchError(f"cannot read {file}: {exc.strerror or exc}") from None
    dialect = _dialect(text)
    try:
        records = [(n, r) for n, r in enumerate(csv.reader(text.splitlines(), dialect), 1) if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise WorkbenchError(f"{file}: not a readable CSV table ({exc})") from None
    if not records:
        raise WorkbenchError(f"{file} is empty; it needs a header row and at least 2 rows of data")
    header = [c.strip() for c in records[0][1]]
    if all(_number(c) is not None for c in header):
        raise WorkbenchError(f"{file}: the first row holds numbers; add a header row naming the columns")
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise WorkbenchError(f"{file}: column name {dup!r} appears twice in the header; rename one")
    rows, lines = [], []
    for line, r in records[1:]:
        if len(r) != len(header):
            raise WorkbenchError(f"{file} line {line}: {len(r)} fields but the header has {len(header)}; "
                                 "fix that row (a missing or extra separator?)")
        rows.append([c.strip() for c in r])
        lines.append(line)
    if len(rows) < least:
        raise WorkbenchError(f"{file}: {len(rows)} row(s) of data; " + ("training needs at least 2" if least == 2
                                                                        else "it needs at least 1"))
    return header, rows, lines


HEADER_BYTES = 1 << 16  # what columns() reads: the header row and a few rows to tell the separator


def columns(path: str | Path) -> list[str]:
    """The column names in a CSV file's header row, read from its first 64 kB only (the window's
    target-column picker asks this off the UI thread); [] when the first row holds numbers."""
    file = Path(path).expanduser()
    fileio.regular_file(file, "CSV file")
    try:
        with open(file, encoding="utf-8-sig", errors="replace", newline="") as fh:
            text = fh.read(HEADER_BYTES)
    except FileNotFoundError:
        raise WorkbenchError(f"CSV file {file} does not exist; pick another file") from None
    except OSError as exc:
        raise WorkbenchError(f"cannot read {file}: {exc.strerror or exc}") from None
    lines = text.splitlines()[:-1] if len(text) == HEADER_BYTES else text.splitlines()  # drop a cut-off line
    try:
        first = next((r for r in csv.reader(lines, _dialect(text)) if any(c.strip() for c in r)), [])
    except csv.Error as exc:
        raise WorkbenchError(f"{file}: not a readable CSV table ({exc})") from None
    header = [c.strip() for c in first]
    return [] if all(_number(c) is not None for c in header) else header


def _dialect(text: str):
    """The separator (comma, semicolon or tab) guessed from the start of the text."""
    try:
        return csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        return csv.excel


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def _check_finite(file: Path, name: str, values: list[str], lines: list[int]) -> None:
    """In a column of numbers, refuse one that is infinite or too large for float32, naming the
    column and line (``inf`` would otherwise turn the column into a text category column)."""
    parsed = []
    for value, line in zip(values, lines):
        if is_missing(value):
            continue
        try:
            parsed.append((float(value), value, line))
        except ValueError:
            return  # a text column: 'inf' there is one of its categories
    for v, value, line in parsed:
        if not math.isfinite(v) or abs(v) > FLOAT32_MAX:
            what = "infinite" if not math.isfinite(v) else "too large (beyond float32's 3.4e38)"
            raise WorkbenchError(f"{file} line {line}: column {name!r} holds {value!r}, which is {what}; use a "
                                 "finite number, or leave the cell empty to mark it missing")


def _check_target_cells(file: Path, name: str, values: list[str], lines: list[int]) -> None:
    for i, (value, line) in enumerate(zip(values, lines)):
        if is_missing(value):
            raise WorkbenchError(f"{file} line {line}: target column {name!r} is empty in data row {i + 1}; fill "
                                 "it, remove the row, or set missing values to drop")


def _encode_target(file: Path, name: str, values: list[str], lines: list[int], task: str):
    """(targets, class names or None, class keys) of the first file's target cells."""
    numbers = [_number(v) for v in values]
    text = next(((v, line) for v, n, line in zip(values, numbers, lines) if n is None and not is_missing(v)), None)
    if task == "regression" and text is not None:  # said before a gap: the task is the bigger change
        bad, line = text
        raise WorkbenchError(f"{file} line {line}: regression needs a numeric target but column {name!r} holds "
                             f"{bad!r}; set the task (data.task) to classification, or fix the value")
    _check_target_cells(file, name, values, lines)
    numeric = all(n is not None for n in numbers)
    if task == "regression":
        return torch.tensor(numbers, dtype=torch.float32)[:, None], None, ()
    distinct = sorted(set(numbers)) if numeric else sorted(set(values))
    if task == "auto" and numeric and not (all(float(n).is_integer() for n in numbers)
                                           and len(distinct) <= MAX_CLASSES_AUTO):
        return torch.tensor(numbers, dtype=torch.float32)[:, None], None, ()
    if len(distinct) < 2:
        raise WorkbenchError(f"{file}: target column {name!r} has a single value; a classifier needs "
                             "at least 2 classes")
    index = {v: i for i, v in enumerate(distinct)}
    if numeric:
        names = [str(int(v)) if float(v).is_integer() else str(v) for v in distinct]
        codes = [index[n] for n in numbers]
        keys = tuple(float(v) for v in distinct)
    else:
        names = list(distinct)
        codes = [index[v] for v in values]
        keys = tuple(distinct)
    return torch.tensor(codes, dtype=torch.long), names, keys
