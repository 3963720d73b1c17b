"""Upstream Packflow's helpers for backend authors, at upstream's module path.

- `ensure_native_types`, `ensure_valid_output` (`packflow.utils.normalize`): numpy, pandas,
  torch and PIL values into JSON-native ones, and model outputs into one dict per row.
- `flatten_dict`, `flatten_records`, `get_nested_field`, `records_to_ndarray`,
  `check_delimiter_collisions`, `get_nested_field_direct`, `set_nested_field_direct`
  (`packflow.utils.data`): the record handling the preprocessors do, one call at a time.
"""

from __future__ import annotations

from packflow.utils.data import (
    check_delimiter_collisions,
    flatten_dict,
    flatten_records,
    get_nested_field,
    get_nested_field_direct,
    records_to_ndarray,
    set_nested_field_direct,
)
from packflow.utils.normalize import ensure_native_types, ensure_valid_output

__all__ = [
    "check_delimiter_collisions",
    "ensure_native_types",
    "ensure_valid_output",
    "flatten_dict",
    "flatten_records",
    "get_nested_field",
    "get_nested_field_direct",
    "records_to_ndarray",
    "set_nested_field_direct",
]
