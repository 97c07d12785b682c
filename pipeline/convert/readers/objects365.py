"""Objects365 (v2): COCO-format JSON, boxes only. plan() reads the JSON once and puts each image's
raw boxes in WorkItem.extra; read() clips them to the real image size and maps category ids.

`file_name` in the JSON is taken relative to the split's images folder; the v2 release writes
paths like "images/v1/patch8/x.jpg" while its archives unpack to "<images>/patch8/x.jpg", so the
trailing parts are tried too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.convert.readers.base import BadSample, Sample, WorkItem
from pipeline.convert.readers.cocojson import boxes_for, plan_per_image
from pipeline.convert.readers.common import load_image, make_sample
from pipeline.taxonomy.schema import DatasetTaxonomy


def plan(tax: DatasetTaxonomy, root: Path, split: str) -> Iterator[WorkItem]:
    return plan_per_image(tax, root, split, lambda entry, anns: {
        "file_name": entry["file_name"],
        "boxes": [(a.get("bbox"), a.get("category_id")) for a in anns],
    })


def resolve_image(item: WorkItem) -> Path:
    """The image file: file_name under the images folder, else its last two parts, else its name."""
    first = Path(item.image)
    file_name = Path(item.extra.get("file_name", first.name))
    images_dir = (
        Path(str(first)[: -len(str(file_name))]) if str(first).endswith(str(file_name)) else first.parent
    )
    for candidate in (first, images_dir / Path(*file_name.parts[-2:]), images_dir / file_name.name):
        if candidate.is_file():
            return candidate
    raise BadSample(first, "missing file")


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    image = load_image(resolve_image(item))
    boxes = boxes_for(tax, item, item.extra.get("boxes", []), image.width, image.height)
    return make_sample(item, image, None, boxes=boxes)
