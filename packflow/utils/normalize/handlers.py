"""The type handlers `ensure_native_types` tries, in this order (upstream's set)."""

from __future__ import annotations

import base64
import io
from typing import Any

from packflow.utils.normalize.base import TypeConversionHandler

__all__ = [
    "NumpyTypeHandler",
    "PandasDataFrameHandler",
    "PandasSeriesHandler",
    "PillowImageHandler",
    "TorchScalarHandler",
    "TorchTensorHandler",
]


class NumpyTypeHandler(TypeConversionHandler):
    """numpy arrays and scalars: `.tolist()` (Python numbers, nested lists)."""

    package_name = "numpy"

    def is_type(self, obj: Any) -> bool:
        np: Any = self.module
        return isinstance(obj, (np.ndarray, np.generic))

    def convert(self, obj: Any) -> Any:
        return obj.tolist()


class PandasSeriesHandler(TypeConversionHandler):
    """A pandas Series: its values as a list."""

    package_name = "pandas"

    def is_type(self, obj: Any) -> bool:
        return isinstance(obj, self.module.Series)  # type: ignore[union-attr]

    def convert(self, obj: Any) -> Any:
        return obj.to_list()


class PandasDataFrameHandler(TypeConversionHandler):
    """A pandas DataFrame: `{"index": [...], "columns": [...], "data": [[...]]}`."""

    package_name = "pandas"

    def is_type(self, obj: Any) -> bool:
        return isinstance(obj, self.module.DataFrame)  # type: ignore[union-attr]

    def convert(self, obj: Any) -> Any:
        return obj.to_dict("split")


class TorchScalarHandler(TypeConversionHandler):
    """A one-element float32 or int32 tensor: its number (as upstream)."""

    package_name = "torch"

    def is_type(self, obj: Any) -> bool:
        torch: Any = self.module
        return (
            isinstance(obj, torch.Tensor)
            and obj.numel() == 1
            and obj.dtype in (torch.float32, torch.int32)
        )

    def convert(self, obj: Any) -> Any:
        return obj.item()


class TorchTensorHandler(TypeConversionHandler):
    """Any other tensor: its values as nested lists, from whichever device holds it."""

    package_name = "torch"

    def is_type(self, obj: Any) -> bool:
        return isinstance(obj, self.module.Tensor)  # type: ignore[union-attr]

    def convert(self, obj: Any) -> Any:
        return obj.detach().cpu().tolist()


class PillowImageHandler(TypeConversionHandler):
    """A PIL image: its PNG encoding, in base64."""

    package_name = "PIL.Image"

    def is_type(self, obj: Any) -> bool:
        return isinstance(obj, self.module.Image)  # type: ignore[union-attr]

    def convert(self, obj: Any) -> Any:
        buffer = io.BytesIO()
        obj.save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode("ascii")
