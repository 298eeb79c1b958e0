"""Transitional: the data section as a plain dict for workbench/data until it reads DataSettings."""
from __future__ import annotations

from typing import Any

from workbench.errors import Problem
from workbench.project.settings import DataSettings


def data_from_json(data: Any, path: str, problems: list[Problem]) -> dict:
    return DataSettings.from_json(data, path, problems).to_dict()
