"""The one-line refusals of export (a config field an architecture cannot express) and import (a
``config.json`` key our model cannot represent)."""

from __future__ import annotations

from typing import Any


def refuse_export(field_name: str, value: Any, arch: Any, why: str = "") -> ValueError:
    """``arch``: an :class:`.families.base.Arch` (its model_type and class_name name it)."""
    return ValueError(f"config field 'model.{field_name}': {value!r} cannot be exported as {arch.model_type} "
                      f"({arch.class_name}){': ' + why if why else ''}")


def refuse_import(where: str, key: str, value: Any, why: str) -> ValueError:
    return ValueError(f"{where}: {key} = {value!r} {why}")
