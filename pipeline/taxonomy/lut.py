"""Raw pixel value -> contiguous class index, as a numpy lookup table.

Unknown raw values map to UNKNOWN so a reader can refuse the sample (quarantine) instead of
silently producing a wrong label. Ignored raw values map to the taxonomy's ignore index.
"""

from __future__ import annotations

import numpy as np

from pipeline.taxonomy.schema import DatasetTaxonomy

UNKNOWN = -1


def integer_lut(tax: DatasetTaxonomy, size: int) -> np.ndarray:
    """int32 table of `size` entries: class index, ignore index, or UNKNOWN."""
    lut = np.full(size, UNKNOWN, dtype=np.int32)
    for raw, target in tax.raw_to_target().items():
        if not isinstance(raw, int):
            raise TypeError(f"{tax.name}: raw id {raw!r} is not an integer pixel value")
        if not 0 <= raw < size:
            # An ignored value outside the table (e.g. -1) can never occur in an unsigned PNG.
            if raw in tax.ignore_values:
                continue
            raise ValueError(f"{tax.name}: raw id {raw} does not fit a table of {size} values")
        lut[raw] = target
    return lut


class UnknownRawValues(ValueError):
    def __init__(self, values: list[int]):
        self.values = values
        super().__init__(f"raw label value(s) not in the taxonomy: {values[:10]}")


def apply_lut(raw: np.ndarray, lut: np.ndarray, dtype: str) -> np.ndarray:
    """Map a raw label array; raise UnknownRawValues naming any value the taxonomy lacks."""
    if raw.size and int(raw.max()) >= lut.size:
        big = sorted(int(v) for v in np.unique(raw[raw >= lut.size]))
        raise UnknownRawValues(big)
    mapped = lut[raw]
    if (mapped == UNKNOWN).any():
        raise UnknownRawValues(sorted(int(v) for v in np.unique(raw[mapped == UNKNOWN])))
    return mapped.astype(dtype)
