"""Model outputs into JSON-native values (upstream's `packflow.utils.normalize`):
`ensure_native_types`, `ensure_valid_output` (`.normalize`), over the type handlers of
`.handlers` (numpy, pandas, torch, PIL) built on `.base.TypeConversionHandler`."""

from __future__ import annotations

from packflow.utils.normalize.normalize import ensure_native_types, ensure_valid_output

__all__ = ["ensure_native_types", "ensure_valid_output"]
