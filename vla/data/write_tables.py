"""Arrow tables of the writer: data rows, episode rows, tasks; and numeric columns read back as numpy.

Layout decisions (as LeRobot >= 0.4 writes them through Hugging Face ``datasets``):

- vector features (observation.state, action) are ``fixed_size_list<float32>[D]``: hf ``datasets`` stores
  ``Sequence(float32, length=D)``, LeRobot's feature for them, as that Arrow type; scalars are plain columns;
- episode stats columns are ``list<double>`` (vectors), ``list<list<list<double>>>`` (images, (3, 1, 1)) and
  ``list<int64>`` (count);
- tasks.parquet holds the task strings as a pandas index (column ``__index_level_0__`` plus pandas metadata),
  which is what ``DataFrame.to_parquet`` writes and what LeRobot's ``pd.read_parquet`` expects.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from vla.data.episode import EXTRA_PREFIX, HISTOGRAM_PREFIX
from vla.data.layout import TASK_INDEX, DatasetError

TASK_STRING_COLUMN = "__index_level_0__"


def column_array(values: np.ndarray) -> pa.Array:
    """(N,) -> a plain column; (N, D) -> fixed_size_list<type>[D]."""
    if values.ndim == 1:
        return pa.array(values)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def frames_table(columns: dict[str, np.ndarray]) -> pa.Table:
    return pa.table({name: column_array(values) for name, values in columns.items()})


def column_numpy(table: pa.Table, name: str, path) -> np.ndarray:
    """Column ``name`` as (N,) or (N, D) numpy; list columns must have one length throughout."""
    if name not in table.column_names:
        raise DatasetError(path, f"missing column '{name}'")
    column = table.column(name).combine_chunks()
    if not pa.types.is_list(column.type) and not pa.types.is_fixed_size_list(column.type):
        return column.to_numpy(zero_copy_only=False)
    if len(column) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    lengths = np.asarray(column.value_lengths())
    if (lengths != lengths[0]).any():
        raise DatasetError(path, f"column '{name}' has rows of different lengths")
    return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), int(lengths[0]))


def _pandas_metadata(column_types: dict[str, str]) -> bytes:
    """The b"pandas" schema metadata of a frame with one unnamed string index (what to_parquet writes)."""
    columns = [
        {"name": name, "field_name": name, "pandas_type": kind, "numpy_type": kind, "metadata": None}
        for name, kind in column_types.items()
    ]
    columns.append(
        {
            "name": None,
            "field_name": TASK_STRING_COLUMN,
            "pandas_type": "unicode",
            "numpy_type": "object",
            "metadata": None,
        }
    )
    return json.dumps(
        {
            "index_columns": [TASK_STRING_COLUMN],
            "column_indexes": [
                {
                    "name": None,
                    "field_name": None,
                    "pandas_type": "unicode",
                    "numpy_type": "object",
                    "metadata": {"encoding": "UTF-8"},
                }
            ],
            "columns": columns,
            "creator": {"library": "pyarrow", "version": pa.__version__},
            "pandas_version": "2.2.3",
        }
    ).encode()


def tasks_table(tasks: list[str]) -> pa.Table:
    """tasks.parquet: task_index (int64) and the task string as the pandas index."""
    table = pa.table(
        {
            TASK_INDEX: pa.array(range(len(tasks)), pa.int64()),
            TASK_STRING_COLUMN: pa.array(tasks, pa.string()),
        }
    )
    return table.replace_schema_metadata({b"pandas": _pandas_metadata({TASK_INDEX: "int64"})})


def _stat_type(name: str, value: np.ndarray) -> pa.DataType:
    if name == "count":
        return pa.list_(pa.int64())
    element: pa.DataType = pa.float64()
    for _ in range(value.ndim):
        element = pa.list_(element)
    return element


def _extra_type(value) -> pa.DataType:
    # bool is checked first: it is also an int.
    for kind, arrow_type in (
        (bool, pa.bool_()),
        (int, pa.int64()),
        (float, pa.float64()),
        (str, pa.string()),
    ):
        if isinstance(value, kind):
            return arrow_type
    raise ValueError(f"unsupported extra value {value!r}")


def episodes_table(rows: list[dict]) -> pa.Table:
    """meta/episodes rows -> a table whose column types do not depend on the values (all rows alike)."""
    first = rows[0]
    fields = []
    for name, value in first.items():
        if name.startswith("stats/"):
            arrow_type = _stat_type(name.rsplit("/", 1)[1], np.asarray(value))
        elif name == "tasks":
            arrow_type = pa.list_(pa.string())
        elif name.endswith("_timestamp"):
            arrow_type = pa.float64()
        elif name.startswith(HISTOGRAM_PREFIX):
            arrow_type = pa.list_(pa.list_(pa.int64()))
        elif name.startswith(EXTRA_PREFIX):
            arrow_type = _extra_type(value)
        else:
            arrow_type = pa.int64()
        fields.append(pa.field(name, arrow_type))
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))
