"""EchoBackend: returns its inputs, for wiring tests and for measuring Packflow itself."""

from __future__ import annotations

from typing import Any

from packflow import BackendConfig, InferenceBackend


class EchoConfig(BackendConfig):
    """Records reach `execute` untouched unless the config renames or selects fields."""

    input_format: str = "passthrough"


class EchoBackend(InferenceBackend):
    """One output per input: the (preprocessed) record itself."""

    backend_config_model = EchoConfig
    name = "echo"
    version = "1"

    def execute(self, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return inputs
