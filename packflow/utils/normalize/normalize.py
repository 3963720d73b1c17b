"""Model outputs into JSON-native values (upstream's `packflow.utils.normalize`).

`ensure_native_types` converts numpy arrays and scalars, pandas Series and DataFrames,
torch tensors and PIL images, inside dicts, lists, tuples and sets, into Python's own
types; `ensure_valid_output` also makes each row of a model's output a dict.

pandas, torch and PIL are never imported here: a value of one of their types can only
exist once its library is imported, so each handler looks its library up in `sys.modules`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from packflow.utils.normalize.base import TypeConversionHandler
from packflow.utils.normalize.handlers import (
    NumpyTypeHandler,
    PandasDataFrameHandler,
    PandasSeriesHandler,
    PillowImageHandler,
    TorchScalarHandler,
    TorchTensorHandler,
)

__all__ = ["HANDLERS", "ensure_native_types", "ensure_valid_output"]

_NATIVE = (str, int, float, bool, type(None))


HANDLERS: list[TypeConversionHandler] = [
    NumpyTypeHandler(),
    PandasSeriesHandler(),
    PandasDataFrameHandler(),
    TorchScalarHandler(),
    TorchTensorHandler(),
    PillowImageHandler(),
]


def ensure_native_types(obj: Any) -> Any:
    """`obj` with every numpy, pandas, torch and PIL value made a JSON-native one.

    numpy arrays and scalars and pandas Series become lists and Python numbers, a DataFrame
    `{"index": [...], "columns": [...], "data": [[...]]}` (`to_dict("split")`), a tensor a
    number (one float32/int32 element) or a list, a PIL image its PNG bytes in base64.
    Dicts keep their keys; lists, tuples and sets become lists. Raises TypeError for any
    other type.
    """
    if isinstance(obj, _NATIVE):
        return obj
    if isinstance(obj, dict):
        return {k: ensure_native_types(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [ensure_native_types(v) for v in obj]
    for handler in HANDLERS:
        if handler.handles(obj):
            # What a library hands back may hold its own types still (a Series of numpy
            # scalars, a DataFrame's cells): convert those too.
            return ensure_native_types(handler.convert(obj))
    raise TypeError(
        f'Returned type "{type(obj)}" is not supported. Please convert this object to a '
        "native Python type in your app."
    )


def ensure_valid_output(output: Iterable[Any], parent_key: str = "output") -> list[dict[str, Any]]:
    """One JSON-native dict per row of `output`: a row that is a dict stays one, a
    one-element list is unwrapped, and anything else becomes `{parent_key: value}`.

    `ensure_valid_output(np.array([[0.1], [0.9]]))` gives
    `[{"output": 0.1}, {"output": 0.9}]`.
    """
    rows = []
    for row in output:
        value = ensure_native_types(row)
        if not isinstance(value, dict):
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            value = {parent_key: value}
        rows.append(value)
    return rows
