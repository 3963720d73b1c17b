"""Backends and scripts written as upstream Packflow's documentation and example notebooks
show them run here unchanged, with the outputs upstream gives.

The sources below are our rewrites of upstream's examples (getting started, extending the
config model, the print backend, the inference-backend-101 notebook, the sklearn notebook
with a numpy stand-in for the model); each is written to a temporary directory and run as a
script in a fresh interpreter, and its stdout is compared exactly.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

INFERENCE = """
from typing import Any, List

from packflow import InferenceBackend


class Backend(InferenceBackend):
    def transform_inputs(self, inputs: List[dict]) -> Any:
        return inputs

    def execute(self, inputs: Any) -> Any:
        outputs = []
        for row in inputs:
            outputs.append({"doubled": row["number"] * 2})

        return outputs

    def transform_outputs(self, outputs):
        return outputs
"""

VALIDATE = """
from packflow.loaders import LocalLoader

backend = LocalLoader("inference:Backend").load()

SAMPLE_SINGLE_ROW = {"number": 5}

SAMPLE_BATCH = [
    {"number": 5},
    {"number": 10},
]

if __name__ == "__main__":
    print("Running validation...")

    print(f"Sample single row: {SAMPLE_SINGLE_ROW}\\n")
    print(f"Sample batch: {SAMPLE_BATCH}\\n")

    outputs_single_row = backend.validate(SAMPLE_SINGLE_ROW)
    outputs_batch = backend.validate(SAMPLE_BATCH)

    print(f"Outputs single row: {outputs_single_row}")
    print(f"Outputs batch: {outputs_batch}")
    print("\\nValidation passed!")
"""

VALIDATE_OUT = """\
Running validation...
Sample single row: {'number': 5}

Sample batch: [{'number': 5}, {'number': 10}]

Outputs single row: {'doubled': 10}
Outputs batch: [{'doubled': 10}, {'doubled': 20}]

Validation passed!
"""

CUSTOM_CONFIG = """
from typing import Any, List

from packflow import BackendConfig, InferenceBackend


class CustomConfigModel(BackendConfig):
    model_path: str = "./resources/model.joblib"
    output_class_names: list[str]


class CustomBackend(InferenceBackend):
    backend_config_model = CustomConfigModel

    def initialize(self):
        self.logger.info(f"Loading model from {self.config.model_path}")
        self.model = lambda x: x

    def execute(self, inputs: Any) -> Any:
        return self.model(inputs)

    def transform_outputs(self, outputs: Any) -> List[dict]:
        cleaned = []
        for row in outputs:
            cleaned.append(dict(zip(self.config.output_class_names, row.values())))
        return cleaned


backend = CustomBackend(output_class_names=["doubled"])
print(backend.validate([{"number": 10}, {"number": 12}]))
try:
    CustomBackend()
except Exception as exc:
    print(type(exc).__name__, "output_class_names" in str(exc))
"""

CUSTOM_CONFIG_OUT = """\
[{'doubled': 10}, {'doubled': 12}]
ConfigError True
"""

PRINT_BACKEND = """
from packflow import InferenceBackend


class PrintBackend(InferenceBackend):
    def __call__(self, *args, **kwargs):
        print(f"PrintBackend called with args: {args}, kwargs: {kwargs}")
        return super().__call__(*args, **kwargs)

    def transform_inputs(self, inputs):
        print(f"Transform Inputs received: {inputs}")
        return inputs

    def execute(self, inputs):
        print(f"Execute received: {inputs}")
        return [{"result": record} for record in inputs]


if __name__ == "__main__":
    backend = PrintBackend()
    sample_input = {"foo": {"bar": 0, "baz": [1]}, "fizz": {"buzz": 2}}
    print("Final Output:", backend(sample_input))
"""

SAMPLE = "{'foo': {'bar': 0, 'baz': [1]}, 'fizz': {'buzz': 2}}"
PRINT_BACKEND_OUT = f"""\
PrintBackend called with args: ({SAMPLE},), kwargs: {{}}
Transform Inputs received: [{SAMPLE}]
Execute received: [{SAMPLE}]
Final Output: {{'result': {SAMPLE}}}
"""

# The inference-backend-101 notebook's cells, one after the other.
NOTEBOOK_101 = """
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def execute(self, inputs):
        return inputs


samples = [dict(number=i) for i in range(3)]
backend = Backend()
print(backend(samples))
print(Backend(verbose=False).validate(samples))
print(Backend(input_format="passthrough", verbose=False)(samples))

samples = [dict(number=i, other_field=i + 1) for i in range(3)]
print(Backend(input_format="records", verbose=False)(samples))
print(Backend(input_format="records", feature_names=["number"], verbose=False)(samples))
print(Backend(input_format="records", feature_names=["other_field", "number"])(samples))
print(
    Backend(
        input_format="records",
        rename_fields={"other_field": "feature_0", "number": "feature_1"},
        feature_names=["feature_0", "feature_1"],
        verbose=False,
    )(samples)
)

samples = [{"number": {"value": [i, i + 1]}} for i in range(2)]
print(Backend(flatten_nested_inputs=True, verbose=False)(samples))
print(Backend(flatten_nested_inputs=True, nested_field_delimiter=":")(samples))
print(Backend(flatten_nested_inputs=True, flatten_lists=True, verbose=False)(samples))

from packflow.utils.normalize import ensure_valid_output


class NumpyBackend(InferenceBackend):
    def execute(self, inputs):
        return inputs * 2

    def transform_outputs(self, inputs):
        return ensure_valid_output(inputs, parent_key="doubled")


samples = [{"feature1": i, "parent_key": {"value": i + 1}} for i in range(3)]
backend = NumpyBackend(input_format="numpy", feature_names=["parent_key.value"], verbose=False)
print(backend(samples))


class FullBackend(InferenceBackend):
    def initialize(self):
        self.logger.info("Hello from __init__!")

    def transform_inputs(self, inputs):
        return [row["number"] for row in inputs]

    def execute(self, inputs):
        return [i * 2 for i in inputs]

    def transform_outputs(self, inputs):
        output = []
        for num in inputs:
            output.append({"doubled": num, "is_even": num % 2 == 0})
        return output


samples = [{"number": i} for i in range(3)]
backend = FullBackend(verbose=False)
assert backend.validate(samples)
print(backend.validate(samples))
print(backend.get_metrics().execution_times.execute >= 0)
"""

NOTEBOOK_101_OUT = """\
[{'number': 0}, {'number': 1}, {'number': 2}]
[{'number': 0}, {'number': 1}, {'number': 2}]
[{'number': 0}, {'number': 1}, {'number': 2}]
[{'number': 0, 'other_field': 1}, {'number': 1, 'other_field': 2}, {'number': 2, 'other_field': 3}]
[{'number': 0}, {'number': 1}, {'number': 2}]
[{'other_field': 1, 'number': 0}, {'other_field': 2, 'number': 1}, {'other_field': 3, 'number': 2}]
[{'feature_0': 1, 'feature_1': 0}, {'feature_0': 2, 'feature_1': 1}, {'feature_0': 3, 'feature_1': 2}]
[{'number.value': [0, 1]}, {'number.value': [1, 2]}]
[{'number:value': [0, 1]}, {'number:value': [1, 2]}]
[{'number.value.0': 0, 'number.value.1': 1}, {'number.value.0': 1, 'number.value.1': 2}]
[{'doubled': 2}, {'doubled': 4}, {'doubled': 6}]
[{'doubled': 0, 'is_even': True}, {'doubled': 2, 'is_even': True}, {'doubled': 4, 'is_even': True}]
True
"""

# The sklearn-classifier notebook's backend, with a numpy nearest-centroid stand-in for
# the joblib-loaded DecisionTreeClassifier (same shape: an array of rows in, classes out).
SKLEARN = """
from pathlib import Path

import numpy as np

from packflow import BackendConfig, InferenceBackend
from packflow.utils.normalize import ensure_valid_output


class CentroidModel:
    centroids = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])

    def predict(self, features):
        distances = ((features[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
        return distances.argmin(axis=1)


class SklearnClassifierConfig(BackendConfig):
    serialized_model_path: str = str(Path(__file__).resolve().parent.joinpath("model.joblib"))
    feature_names: list[str] = [
        "sepal length (cm)",
        "sepal width (cm)",
        "petal length (cm)",
        "petal width (cm)",
    ]


class Backend(InferenceBackend):
    backend_config_model = SklearnClassifierConfig

    def initialize(self):
        self.logger.info(f"Loading model from: {self.config.serialized_model_path}")
        self.model = CentroidModel()

    def transform_inputs(self, inputs):
        return np.asarray(inputs, dtype=float)

    def execute(self, inputs):
        return self.model.predict(inputs)

    def transform_outputs(self, outputs):
        return ensure_valid_output(outputs, parent_key="class")


backend = Backend(input_format="numpy")

if __name__ == "__main__":
    from packflow.loaders import ModuleLoader

    loaded = ModuleLoader("sklearn_inference:backend").load()
    names = loaded.config.feature_names
    rows = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.9, 3.1, 5.4, 2.1]]
    print(loaded.validate([dict(zip(names, r)) for r in rows]))
"""

SKLEARN_OUT = "[{'class': 0}, {'class': 1}, {'class': 2}]\n"

CASES = {
    "getting_started": ({"inference.py": INFERENCE, "validate.py": VALIDATE}, VALIDATE_OUT),
    "custom_config": ({"validate.py": CUSTOM_CONFIG}, CUSTOM_CONFIG_OUT),
    "print_backend": ({"validate.py": PRINT_BACKEND}, PRINT_BACKEND_OUT),
    "notebook_101": ({"validate.py": NOTEBOOK_101}, NOTEBOOK_101_OUT),
    "sklearn_notebook": (
        {
            "sklearn_inference.py": SKLEARN,
            "validate.py": "import runpy\n"
            "runpy.run_path('sklearn_inference.py', run_name='__main__')\n",
        },
        SKLEARN_OUT,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_upstream_example_runs_unchanged(case: str, tmp_path: Path) -> None:
    files, expected = CASES[case]
    for name, source in files.items():
        (tmp_path / name).write_text(textwrap.dedent(source).lstrip("\n"))
    run = subprocess.run(
        [sys.executable, "validate.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "", "PYTHONPATH": str(tmp_path), "PACKFLOW_LOG_FORMAT": "json"},
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == expected
