"""Arrow arrays to and from numpy without pandas.

``Array.to_numpy``, ``pa.array(ndarray)`` and ``Table.to_pandas`` import pandas (~0.2-0.3 s
of a process's start: a filter step's whole budget at 1M rows); these helpers read and
build the arrays from their buffers instead, zero copy where Arrow allows it.  numpy and
pyarrow are imported by each function: the SQL query path imports this module's importers
and neither of them (bench/README.md, ``sql_first_row.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


def ints(array: pa.Array) -> np.ndarray:
    """A numeric Arrow array without nulls as numpy, zero copy."""
    import numpy as np

    dtype = np.dtype(array.type.to_pandas_dtype())
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array),
                         offset=array.offset * dtype.itemsize)


def numbers(array: pa.Array) -> np.ndarray | None:
    """``ints`` of an integer or floating array, None for another type."""
    import pyarrow as pa

    return ints(array) if pa.types.is_integer(array.type) or pa.types.is_floating(array.type) \
        else None


def bits(buffer: pa.Buffer, offset: int, n: int) -> np.ndarray:
    """``n`` bits of an Arrow bitmap from bit ``offset`` as a 0/1 uint8 array (unpacking
    only the bytes they are in: slices have large offsets)."""
    import numpy as np

    lo = offset // 8
    raw = np.frombuffer(buffer, np.uint8, count=(offset + n + 7) // 8 - lo, offset=lo)
    shift = offset % 8
    return np.unpackbits(raw, bitorder="little")[shift:shift + n]


def from_numpy(values: np.ndarray) -> pa.Array:
    """A numpy array of numbers as an Arrow array over its buffer (no copy when contiguous)."""
    import numpy as np
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values),
                                 [None, pa.py_buffer(values)])


def strings(values: list[str]) -> pa.Array:
    """An Arrow string array of ``values`` (a few: a dictionary's), built from its buffers."""
    import numpy as np
    import pyarrow as pa

    data = [v.encode() for v in values]
    offsets = np.cumsum([0] + [len(d) for d in data], dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), len(data),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])
