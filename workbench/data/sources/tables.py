"""CSV tables: a header row, one target column, numeric features as they are and text
features one-hot encoded. Problems name the line or column and say what to change."""
from __future__ import annotations

import csv
import difflib
import math
from pathlib import Path

import torch

from workbench import fileio
from workbench.data.sources.base import TensorSource
from workbench.errors import WorkbenchError
from workbench.project.settings import DataSettings

MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}
MAX_CATEGORIES = 200  # per text column; more is an id or free text, not a category
MAX_CLASSES_AUTO = 20  # whole-number targets with at most this many values are classes


def read_csv(settings: DataSettings) -> TensorSource:
    """The table at ``settings.path``; ``settings.target`` names the column to predict (default: the
    last one) and ``settings.task`` says classification, regression or auto."""
    target, task = settings.target, settings.task
    file = Path(settings.path).expanduser()
    header, rows, lines = _read_rows(file)
    if target is None:
        target = header[-1]
    if target not in header:
        close = difflib.get_close_matches(target, header, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise WorkbenchError(f"{file}: no column {target!r}; {hint}columns are {', '.join(map(repr, header))}")
    t = header.index(target)
    features = [i for i in range(len(header)) if i != t]
    if not features:
        raise WorkbenchError(f"{file}: the table has only the target column {target!r}; add feature columns")
    columns: list[torch.Tensor] = []
    names: list[str] = []
    for i in features:
        values = [r[i] for r in rows]
        _check_finite(file, header[i], values, lines)
        column, column_names = _encode_feature(file, header[i], values)
        columns.append(column)
        names.extend(column_names)
    x = torch.cat(columns, dim=1)
    values = [r[t] for r in rows]
    _check_finite(file, target, values, lines)
    y, classes = _encode_target(file, target, values, task)
    return TensorSource(f"{file.name} (target {target!r})", x, y, classes, feature_names=names)


def _read_rows(file: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """The header, the data rows and each data row's line number in the file."""
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
    if len(rows) < 2:
        raise WorkbenchError(f"{file}: {len(rows)} row(s) of data; training needs at least 2")
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
        if value.lower() in MISSING:
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


def _encode_feature(file: Path, name: str, values: list[str]) -> tuple[torch.Tensor, list[str]]:
    """The column as input values and their names: a number column as it is, a text column one-hot
    (one value per category, named "column=category")."""
    present = [v for v in values if v.lower() not in MISSING]
    numbers = [_number(v) for v in present]
    if present and all(n is not None for n in numbers):
        mean = sum(numbers) / len(numbers)
        col = [mean if v.lower() in MISSING else float(v) for v in values]  # missing -> column mean
        return torch.tensor(col, dtype=torch.float32)[:, None], [name]
    labels = [v if v.lower() not in MISSING else "(missing)" for v in values]
    cats = sorted(set(labels))
    if len(cats) > MAX_CATEGORIES:
        raise WorkbenchError(f"{file}: column {name!r} has {len(cats)} different text values (an id or free "
                             f"text?); a category column may have at most {MAX_CATEGORIES}: remove the column "
                             "or turn it into numbers")
    index = {c: i for i, c in enumerate(cats)}
    codes = torch.tensor([index[v] for v in labels])
    return torch.nn.functional.one_hot(codes, len(cats)).float(), [f"{name}={c}" for c in cats]


def _encode_target(file: Path, name: str, values: list[str], task: str):
    missing = [i for i, v in enumerate(values) if v.lower() in MISSING]
    if missing:
        raise WorkbenchError(f"{file}: target column {name!r} is empty in data row {missing[0] + 1}; fill it "
                             "or remove the row")
    numbers = [_number(v) for v in values]
    numeric = all(n is not None for n in numbers)
    if task == "regression":
        if not numeric:
            bad = next(v for v, n in zip(values, numbers) if n is None)
            raise WorkbenchError(f"{file}: regression needs a numeric target but {name!r} holds {bad!r}; "
                                 "set data.task to classification or fix the value")
        return torch.tensor(numbers, dtype=torch.float32)[:, None], None
    distinct = sorted(set(numbers)) if numeric else sorted(set(values))
    if task == "auto" and numeric and not (all(float(n).is_integer() for n in numbers)
                                           and len(distinct) <= MAX_CLASSES_AUTO):
        return torch.tensor(numbers, dtype=torch.float32)[:, None], None
    if len(distinct) < 2:
        raise WorkbenchError(f"{file}: target column {name!r} has a single value; a classifier needs "
                             "at least 2 classes")
    if numeric:
        names = [str(int(v)) if float(v).is_integer() else str(v) for v in distinct]
        index = {v: i for i, v in enumerate(distinct)}
        codes = [index[n] for n in numbers]
    else:
        names = list(distinct)
        index = {v: i for i, v in enumerate(distinct)}
        codes = [index[v] for v in values]
    return torch.tensor(codes, dtype=torch.long), names
