"""Raw id -> contiguous class index: the lookup tables and the one mapper every reader uses.

Unknown raw values map to UNKNOWN so a reader can refuse the sample (quarantine) instead of
silently producing a wrong label. Ignored raw values map to the taxonomy's ignore index.

Applying a table takes two cheap passes over the pixels and no wide temporaries: a histogram of the
raw values (which also finds any unknown value: no pass over the mapped array) and one lookup in
the output dtype. For 8-bit arrays both run in PIL's C loops, several times faster than numpy's
fancy indexing or np.bincount, which widen every pixel to an index.
"""

from __future__ import annotations

from functools import cached_property

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
    def __init__(self, values: list, what: str = "raw label value(s)", pixels: list[int] | None = None,
                 total: int = 0):
        self.values, self.what = values, what
        # Pixels of each value and of the whole label, when counted: the summary gives pixel shares.
        self.pixels, self.total = pixels, total
        super().__init__(f"{what} not in the taxonomy: {values[:10]}")


def _is_u8_plane(values: np.ndarray) -> bool:
    return values.dtype == np.uint8 and values.ndim == 2 and values.size > 0


def value_counts(values: np.ndarray, size: int = 0) -> np.ndarray:
    """int64 occurrences of each value (at least `size` entries) of a non-negative integer array."""
    if _is_u8_plane(values):
        from PIL import Image

        counts = np.asarray(Image.fromarray(np.ascontiguousarray(values)).histogram(), dtype=np.int64)
        return np.pad(counts, (0, max(0, size - counts.size)))
    # bincount widens to intp anyway; doing it here also admits uint32/uint64 (callers bound the values).
    return np.bincount(values.ravel().astype(np.intp, copy=False), minlength=size).astype(
        np.int64, copy=False
    )


def lookup(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """table[values], in the table's dtype. Every value must be < len(table)."""
    if _is_u8_plane(values) and table.dtype == np.uint8 and table.size == 256:
        from PIL import Image

        mapped = Image.fromarray(np.ascontiguousarray(values)).point(table.tolist())
        return np.asarray(mapped)
    return gather(table, values)


def gather(table: np.ndarray, index: np.ndarray, bits: int | None = None, block: int = 1 << 14) -> np.ndarray:
    """table[index] (or table[index & (2^bits - 1)]), a block at a time.

    np.take first widens the whole index array to intp, a temporary up to 8x its size; fresh pages
    for it (and for a masked copy) cost more than the lookup itself. One small reused intp block
    does the widening and masking instead."""
    out = np.empty(index.shape, dtype=table.dtype)
    flat_index, flat_out = index.reshape(-1), out.reshape(-1)
    buffer = np.empty(min(block, flat_index.size), dtype=np.intp)
    for start in range(0, flat_index.size, block):
        part = flat_index[start : start + block]
        widened = buffer[: part.size]
        if bits is None:
            widened[...] = part
        else:
            np.bitwise_and(part, (1 << bits) - 1, out=widened)
        np.take(table, widened, out=flat_out[start : start + part.size])
    return out


def unknown_values(counts: np.ndarray, lut: np.ndarray) -> list[int]:
    """Values that occur (counts > 0) but the table lacks or marks UNKNOWN."""
    present = np.flatnonzero(counts)
    inside = present[present < lut.size]
    bad = [*inside[lut[inside] == UNKNOWN].tolist(), *present[present >= lut.size].tolist()]
    return sorted(int(v) for v in bad)


def apply_lut(raw: np.ndarray, lut: np.ndarray, dtype: str) -> np.ndarray:
    """Map a raw label array; raise UnknownRawValues naming any value the taxonomy lacks."""
    if raw.size and raw.dtype.kind == "i" and int(raw.min()) < 0:
        raise UnknownRawValues(sorted(int(v) for v in np.unique(raw[raw < 0])))
    if raw.size and raw.dtype != np.uint8 and int(raw.max()) >= lut.size:
        # np.bincount would size its table by the largest value: name the values instead.
        raise UnknownRawValues(sorted(int(v) for v in np.unique(raw[raw >= lut.size])))
    counts = value_counts(raw, lut.size)
    bad = unknown_values(counts, lut)
    if bad:
        raise UnknownRawValues(bad, pixels=[int(counts[v]) for v in bad], total=int(raw.size))
    if lut.size > 65536:  # casting a huge table per call would cost more than the cast of the result
        return lut[raw].astype(dtype)
    return lookup(lut.astype(dtype), raw)


class RawMapper:
    """Raw id -> class for one taxonomy: the one place readers map raw values (`mapper_for(tax)`).

    Tables are built on first use and kept on the taxonomy object, so a reader never walks the class
    list per image. Unknown raw values raise UnknownRawValues; the reader names the file."""

    def __init__(self, tax: DatasetTaxonomy):
        self.tax = tax  # nothing is read from it here: unpickling may pass a taxonomy not yet filled in
        self._luts: dict[int, np.ndarray] = {}
        self._table8: tuple[np.ndarray, np.ndarray, list[int]] | None = None

    def __reduce__(self):  # tables are rebuilt where used, never shipped to Ray workers
        return (RawMapper, (self.tax,))

    @cached_property
    def table(self) -> dict:
        """Raw id (int or str) -> class index or ignore index."""
        return self.tax.raw_to_target()

    @cached_property
    def _largest(self) -> int:
        return max((r for r in self.table if isinstance(r, int)), default=0)

    def target(self, raw_id: object) -> int:
        """One raw id (integer, or a string such as an OpenImages MID) -> class or ignore index."""
        if raw_id not in self.table:
            raise UnknownRawValues([raw_id])
        return self.table[raw_id]

    def lut(self, size: int) -> np.ndarray:
        if size not in self._luts:
            self._luts[size] = integer_lut(self.tax, size)
        return self._luts[size]

    def _lut_size(self, raw: np.ndarray) -> int:
        if raw.dtype == np.uint8:
            size = 256
        elif raw.dtype == np.uint16:
            size = 65536
        else:
            if raw.size and int(raw.min()) < 0:
                raise UnknownRawValues(sorted(set(raw[raw < 0].tolist())), "negative raw label value(s)")
            size = 1 << max(8, int(raw.max(initial=0)).bit_length())
        return max(size, self._largest + 1)

    def map_array(self, raw: np.ndarray) -> np.ndarray:
        """Raw integer label array -> class indices (the taxonomy's label dtype)."""
        return apply_lut(raw, self.lut(self._lut_size(raw)), self.tax.label_dtype)

    def map_label_image(self, im) -> tuple[np.ndarray, np.ndarray | None]:
        """map_array for a decoded PIL label image, plus the mapped label's value counts when they
        come for free. 8-bit L and P (palette index = raw id) images are mapped in PIL: one histogram
        of the raw values (finds unknown ones, and gives the class counts) and one table lookup."""
        from PIL import Image

        if im.mode not in ("L", "P"):
            raw = np.asarray(im)
            return self.map_array(raw if raw.dtype in (np.uint8, np.uint16) else raw.astype(np.int64)), None
        if im.mode == "P":  # the same bytes read as L: PIL's histogram and point then see the indices
            im = Image.frombuffer("L", im.size, im.tobytes(), "raw", "L", 0, 1)
        lut, table, table_list = self._eight_bit()
        raw_counts = np.asarray(im.histogram(), dtype=np.int64)
        bad = unknown_values(raw_counts, lut)
        if bad:
            raise UnknownRawValues(bad, pixels=[int(raw_counts[v]) for v in bad], total=im.size[0] * im.size[1])
        label = np.asarray(im.point(table_list)) if table.dtype == np.uint8 else gather(table, np.asarray(im))
        return label, regroup_counts(raw_counts, table)

    def _eight_bit(self) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """For 8-bit label images: the raw-id table's first 256 entries (with UNKNOWN), the same in the
        label dtype (UNKNOWN wraps, but only values checked to be known are looked up), and as a list."""
        if self._table8 is None:
            lut = self.lut(self._lut_size(np.empty(0, np.uint8)))[:256]
            table = lut.astype(self.tax.label_dtype)
            self._table8 = (lut, table, table.tolist())
        return self._table8


def regroup_counts(counts: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Counts of values v -> counts of table[v] (what a histogram of the mapped array would give)."""
    size = 256 if table.dtype == np.uint8 else int(table.max(initial=0)) + 1
    out = np.zeros(size, dtype=np.int64)
    np.add.at(out, table[: counts.size], counts[: table.size])
    return out


_MAPPER_SLOT = "_raw_mapper"


def mapper_for(tax: DatasetTaxonomy) -> RawMapper:
    """The taxonomy's one RawMapper, built on first use and kept on the taxonomy object (in its __dict__,
    as functools.cached_property keeps a value; pydantic compares and validates fields only)."""
    mapper = tax.__dict__.get(_MAPPER_SLOT)
    if mapper is None:
        mapper = tax.__dict__[_MAPPER_SLOT] = RawMapper(tax)
    return mapper
