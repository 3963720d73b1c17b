"""`TypeConversionHandler`: turns the values of one library into JSON-native ones."""

from __future__ import annotations

import abc
import importlib.util
import sys
from types import ModuleType
from typing import Any

__all__ = ["TypeConversionHandler"]


class TypeConversionHandler(abc.ABC):
    """Converts values of the library `package_name` (upstream's base class).

    The library is never imported here: a value of one of its types can only exist once it
    is imported, so `module` is looked up in `sys.modules`, and `is_type` is False while it
    is not there. `available()` says whether the library is installed at all.
    """

    def __repr__(self) -> str:
        return type(self).__name__

    @property
    @abc.abstractmethod
    def package_name(self) -> str:
        """The module whose types this handler converts (`numpy`, `PIL.Image`, ...)."""

    @property
    def module(self) -> ModuleType | None:
        """The library's module when it is imported, else None."""
        return sys.modules.get(self.package_name)

    def available(self) -> bool:
        """Whether the library is installed (it is not imported to find out)."""
        if self.module is not None:
            return True
        try:
            return importlib.util.find_spec(self.package_name) is not None
        except (ImportError, ValueError):
            return False

    def handles(self, obj: Any) -> bool:
        """`is_type(obj)`, False while the library is not imported."""
        return self.module is not None and self.is_type(obj)

    @abc.abstractmethod
    def is_type(self, obj: Any) -> bool:
        """Whether `obj` is of a type this handler converts (the library is imported)."""

    @abc.abstractmethod
    def convert(self, obj: Any) -> Any:
        """`obj` as JSON-native Python values."""
