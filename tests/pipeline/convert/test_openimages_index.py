"""OpenImages' segmentation CSV read completely and exactly, or the split stops naming the line; real
index rows convert with no unknown MID; unknown MIDs are tabulated at the end of a convert."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from support.generated import jpeg, png
from support.layout import place, shipped

from pipeline.convert.layouts.openimages import COLUMNS as OI_HEADER
from pipeline.convert.readers import BadSample, get_reader
from pipeline.convert.readers.openimages_v6 import masks_of

REAL_ROWS = Path(__file__).parents[2] / "data" / "openimages-v6" / "train-annotations-object-segmentation.csv"


def _layout(root: Path, tax, split: str, rows: list[list[str]], size=(32, 24)) -> Path:
    """Images and full-size masks (left half set) for the rows, in the release's names and folders."""
    spec = tax.splits[split]
    for image_id in sorted({r[1] for r in rows}):
        place(root, spec.images, f"{image_id}.jpg", data=jpeg(size[0], size[1], 1))
    mask = np.zeros((size[1], size[0]), bool)
    mask[:, : size[0] // 2] = True
    for r in rows:
        place(root, spec.annotations, r[0], data=png(mask.astype(np.uint8) * 255, "L"))
    return root / spec.index


def _write_csv(index: Path, rows: list[list[str]]) -> None:
    index.parent.mkdir(parents=True, exist_ok=True)
    with open(index, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(OI_HEADER)
        w.writerows(rows)


def _rows(n_images: int, mids: list[str]) -> list[list[str]]:
    rows = []
    for i in range(n_images):
        image_id = f"{i:016x}"
        for j, mid in enumerate(mids):
            box = f"{i:04x}{j:04x}"
            rows.append([f"{image_id}_{mid.replace('/', '')}_{box}.png", image_id, mid, box,
                         "0.1", "0.9", "0.1", "0.9", "0.8", "0.5 0.5 1"])
    return rows


def test_real_index_rows_convert_with_no_unknown_mid(tmp_path):
    """The four real rows (two of them Clothing) plan and read through the shipped taxonomy."""
    tax = shipped("openimages-v6-seg")
    shutil.copy(REAL_ROWS, tmp_path / tax.splits["train"].index)
    with open(REAL_ROWS, newline="") as f:
        rows = list(csv.reader(f))[1:]
    _layout(tmp_path, tax, "train", rows)
    reader = get_reader(tax.format)
    items = list(reader.plan(tax, tmp_path, "train"))
    assert [i.key for i in items] == sorted(r[1] for r in rows)
    index = tax.raw_to_index()
    for item, row in zip(items, sorted(rows, key=lambda r: r[1])):
        assert [(p.name, mid) for p, mid in masks_of(item)] == [(row[0], row[2])]
        sample = reader.read(tax, item)
        assert set(np.unique(sample.label).tolist()) == {index[row[2]], tax.ignore_index}
    assert tax.classes[index["/m/09j2d"]].name == "Clothing"


def test_unbalanced_quote_stops_the_split_at_its_row(tmp_path):
    """An unbalanced quote in row 3 used to swallow the rest of the file into one field: 1 of 160
    images written, relabelled, and a made-up key quarantined. Now nothing is planned."""
    tax = shipped("openimages-v6-seg")
    rows = _rows(160, ["/m/04yx4"])
    index = _layout(tmp_path, tax, "validation", rows[:3])
    _write_csv(index, rows)
    lines = index.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace(",/m/04yx4,", ',"/m/04yx4,', 1)  # data row 3 (file line 4)
    index.write_text("".join(lines))
    with pytest.raises(BadSample) as err:
        list(get_reader(tax.format).plan(tax, tmp_path, "validation"))
    assert err.value.path == str(index)
    assert "damaged CSV" in err.value.reason and "unbalanced quote" in err.value.reason
    assert "line 4:" in err.value.reason and "csv-line" not in err.value.reason  # header is line 1


def test_csv_cut_mid_row_stops_the_split(tmp_path):
    """A download cut inside the last row used to drop that mask silently."""
    tax = shipped("openimages-v6-seg")
    rows = _rows(3, ["/m/04yx4", "/m/09j2d"])
    index = _layout(tmp_path, tax, "validation", rows)
    _write_csv(index, rows)
    data = index.read_bytes()
    index.write_bytes(data[: len(data) - 25])  # inside the Clicks field of the last row
    with pytest.raises(BadSample) as err:
        list(get_reader(tax.format).plan(tax, tmp_path, "validation"))
    assert "line 7 ends without a newline" in err.value.reason  # header + 6 rows


def test_undecodable_bytes_name_their_line(tmp_path):
    tax = shipped("openimages-v6-seg")
    rows = _rows(3, ["/m/04yx4"])
    index = _layout(tmp_path, tax, "validation", rows)
    _write_csv(index, rows)
    lines = index.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b"0.5 0.5 1", b"0.5 \xff\xfe 1")
    index.write_bytes(b"".join(lines))
    with pytest.raises(BadSample) as err:
        list(get_reader(tax.format).plan(tax, tmp_path, "validation"))
    assert "line 3: undecodable bytes" in err.value.reason


def test_bad_row_content_quarantines_only_its_image_naming_the_line(tmp_path):
    tax = shipped("openimages-v6-seg")
    rows = _rows(2, ["/m/04yx4"])
    index = _layout(tmp_path, tax, "validation", rows)
    rows[1][0] = "wrong_name.png"  # MaskPath that does not match its row
    _write_csv(index, rows)
    reader = get_reader(tax.format)
    items = {i.key: i for i in reader.plan(tax, tmp_path, "validation")}
    with pytest.raises(BadSample) as err:
        reader.read(tax, items[rows[1][1]])
    assert "CSV line 3" in err.value.reason and "wrong_name.png" in err.value.reason
    reader.read(tax, items[rows[0][1]])  # the other image converts


def test_unknown_mids_are_tabulated_at_the_end_of_a_convert(tmp_path):
    """Each quarantine entry carries the unknown values; the split result tallies them per value."""
    import typer
    from typer.testing import CliRunner

    from pipeline.convert import cli
    from pipeline.convert.runner import convert_split

    tax = shipped("openimages-v6-seg")
    rows = _rows(3, ["/m/04yx4"]) + _rows(2, ["/m/0zzzz_notaclass"])[:2]
    rows[-1][1] = rows[-1][1].replace("0000000000000001", "0000000000000002")
    rows[-1][0] = f"{rows[-1][1]}_m0zzzz_notaclass_{rows[-1][3]}.png"
    index = _layout(tmp_path / "root", tax, "validation", rows)
    _write_csv(index, rows)
    result = convert_split(tax, get_reader(tax.format), tmp_path / "root", "validation", tmp_path / "out",
                           shard_bytes=10**9, progress=False)
    assert result.quarantined == 2 and result.written == 1
    [unknown] = result.unknown
    assert (unknown.value, unknown.samples) == ("/m/0zzzz_notaclass", 2)
    assert unknown.example.endswith(tax.splits["validation"].index)
    quarantine = (tmp_path / "out" / tax.name / "validation.quarantine.jsonl").read_text().splitlines()
    import json

    entries = [json.loads(line) for line in quarantine]
    assert all({"key", "file", "reason"} <= set(e) and e["unknown"] == ["/m/0zzzz_notaclass"] for e in entries)

    app = typer.Typer()
    app.command("convert")(cli.convert)
    out = CliRunner().invoke(app, [tax.name, "--root", str(tmp_path / "root"), "--split", "validation",
                                   "--out", str(tmp_path / "out2"), "--no-ray", "--max-quarantined", "1"],
                        terminal_width=200)  # 2 of 3 quarantined on purpose
    assert out.exit_code == 0, out.output
    assert "not in the taxonomy" in out.output and "/m/0zzzz_notaclass" in out.output
    line = next(x for x in out.output.splitlines() if "/m/0zzzz_notaclass" in x)
    assert " 2 " in line
