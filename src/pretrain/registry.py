"""Named plug-ins of one kind, the machinery every extension point shares.

Input formats (``data/curate/io/formats``), Hugging Face families (``model/hf/families``), attention
backends (``model/backends``) and built-in evals (``eval/builtin``) are each a package whose modules
register one component apiece with a decorator or call. A :class:`Registry` keeps them by name, refuses
a name registered twice by two different components, and imports every module of its package the first
time it is read, so a built-in never depends on who imported what first. A component defined outside
the package registers the same way, from wherever its module is imported.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str):
        self.kind, self.package = kind, package
        self._items: dict[str, T] = {}
        self._idents: dict[str, Any] = {}
        self._loaded = False

    def add(self, name: str, item: T, ident: Any = None) -> T:
        """Register ``item`` under ``name``. ``ident`` (default: the item) says what counts as the same
        component: registering it again (a module imported twice) is fine, another one is an error."""
        ident = item if ident is None else ident
        if name in self._idents and self._idents[name] is not ident:
            raise ValueError(f"{self.kind} {name!r} is registered twice ({_where(self._idents[name])} and "
                             f"{_where(ident)})")
        self._items[name], self._idents[name] = item, ident
        return item

    def remove(self, name: str) -> None:
        """Forget ``name`` (a component registered for a test or a session only)."""
        self._items.pop(name, None)
        self._idents.pop(name, None)

    def all(self) -> dict[str, T]:
        """Every registered component by name, in registration order (the package's modules loaded)."""
        self._load()
        return dict(self._items)

    def get(self, name: str) -> T:
        items = self.all()
        if name not in items:
            raise ValueError(f"unknown {self.kind} {name!r} (one of {', '.join(sorted(items))})")
        return items[name]

    def _load(self) -> None:
        if self._loaded:
            return
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name != "base":
                importlib.import_module(f"{self.package}.{info.name}")
        self._loaded = True


def _where(ident: Any) -> str:
    return getattr(ident, "__module__", None) or type(ident).__module__


__all__ = ["Registry"]
