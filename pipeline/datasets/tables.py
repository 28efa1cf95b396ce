"""Reading the metadata tables that dataset releases ship: CSV, XLSX, MATLAB .mat, text.

Every reader returns plain Python values (rows as dicts of str -> value) and raises
:class:`DatasetError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from qfeat.errors import DatasetError


def read_csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    """Rows of a CSV file with a header; header names are stripped, BOM tolerated."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = [h.strip() for h in next(reader, [])]
            # a short row (a line split by a bare '\r' in a name) gets empty cells: its
            # item is then rejected by name, not a KeyError
            rows = [
                {h: v.strip() for h, v in zip(header, [*r, *[""] * len(header)], strict=False)}
                for r in reader
                if any(cell.strip() for cell in r)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    if not header:
        raise DatasetError(f"{path} is empty; expected a header row")
    return rows


def read_xlsx(path: Path, sheet: str | int = 0) -> list[dict[str, Any]]:
    """Rows of one sheet of an Excel workbook (first row = header)."""
    import pandas as pd

    try:
        frame = pd.read_excel(path, sheet_name=sheet, engine="openpyxl")
    except ImportError as exc:
        raise DatasetError(
            f"{path} is an Excel file and reading it needs openpyxl: "
            "pip install 'qfeat[xlsx]' (or pip install openpyxl)"
        ) from exc
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.to_dict(orient="records")


def read_mat(path: Path) -> dict[str, Any]:
    """Variables of a MATLAB v5 .mat file (v7.3 files are HDF5 and read with h5py)."""
    import scipy.io

    try:
        return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except NotImplementedError:  # MATLAB v7.3 = HDF5
        return _read_mat73(path)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc


def mat_var(mat: dict[str, Any], key: str, path: Path) -> Any:
    """Variable ``key`` of a loaded .mat file, or a DatasetError naming the file."""
    if key not in mat:
        raise DatasetError(f"{path} has no variable '{key}'; is this the official release file?")
    return mat[key]


def mat_field(struct: Any, field: str, path: Path) -> Any:
    """Field of a MATLAB struct loaded with ``struct_as_record=False``."""
    if not hasattr(struct, field):
        raise DatasetError(f"{path}: struct has no field '{field}'; is this the official file?")
    return getattr(struct, field)


def _read_mat73(path: Path) -> dict[str, Any]:
    import h5py
    import numpy as np

    out: dict[str, Any] = {}
    with h5py.File(path, "r") as f:
        for key, ds in f.items():
            if not isinstance(ds, h5py.Dataset):
                continue
            if ds.dtype == object:  # cell array of references to char arrays
                out[key] = [
                    "".join(chr(c) for c in np.asarray(f[ref]).ravel()) for ref in ds[()].ravel()
                ]
            else:
                out[key] = np.asarray(ds).squeeze()
    return out


def require_columns(rows: list[dict], columns: list[str], path: Path) -> None:
    if not rows:
        raise DatasetError(f"{path} has no data rows")
    have = set(rows[0])
    missing = [c for c in columns if c not in have]
    if missing:
        raise DatasetError(
            f"{path} lacks column(s) {', '.join(missing)} (it has: {', '.join(sorted(have))}); "
            "is this the official release file?"
        )


def as_str_list(value: Any) -> list[str]:
    """A MATLAB cell array / char array / numpy array of names as a list of str."""
    import numpy as np

    arr = np.atleast_1d(np.asarray(value, dtype=object)).ravel()
    return [str(np.asarray(v).ravel()[0]) if isinstance(v, np.ndarray) else str(v) for v in arr]


def as_float_list(value: Any) -> list[float]:
    import numpy as np

    return [float(v) for v in np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()]
