"""Import one of the scripts in ``scripts/`` as a module (they are not a package)."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@cache
def load_script(name: str):
    """The module of ``scripts/<name>.py``, loaded once."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
