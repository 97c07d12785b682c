"""Objects365 (v2): COCO-format JSON, boxes only. plan() streams the JSON once into compact columns
(pipeline/convert/readers/cocojson.plan_columns); read() clips each image's boxes to its real size
and maps category ids.

Layouts: the official archives unpack each patch folder under the split folder
(`<root>/train/patch8/objects365_v1_00420917.jpg`), which is also what mmdetection reads (`train/`
beside `annotations/`), while the JSON's `file_name` reads `images/v1/patch8/<file>.jpg`. So an
image is looked for as `<images>/<file_name>`, then `<images>/<patch>/<file>`, then
`<images>/<file>`. Boxes marked `iscrowd` or `ignore` are kept out of `boxes` and counted in the
summary (the trainer has no use for ignore regions of box data)."""

from __future__ import annotations

from pathlib import Path

from pipeline.convert.readers.base import BadSample, Sample, WorkItem
from pipeline.convert.readers.cocojson import boxes_for, plan_columns
from pipeline.convert.readers.common import load_image, make_sample
from pipeline.convert.readers.plan_columns import ItemColumns
from pipeline.taxonomy.schema import DatasetTaxonomy


def plan(tax: DatasetTaxonomy, root: Path, split: str) -> ItemColumns:
    return plan_columns(tax, root, split)


def candidates(item: WorkItem) -> list[Path]:
    """Where the image may be: file_name under the images folder, its last two parts, its name."""
    return candidate_paths(item.image, item.extra.get("images_dir"))


def candidate_paths(image: str, images_dir: str | None) -> list[Path]:
    first = Path(image)
    if images_dir and image.startswith(images_dir + "/"):
        file_name = Path(image[len(images_dir) + 1:])
        folder = Path(images_dir)
    else:
        file_name, folder = Path(first.name), first.parent
    out = [first]
    for c in (folder / Path(*file_name.parts[-2:]), folder / file_name.name):
        if c not in out:
            out.append(c)
    return out


def locate(path: str, shared: dict) -> str:
    """For the planner (sizes, absent folders): the candidate read() would open, else the official
    archives' place for it, <images>/patchN/<file>."""
    tried = candidate_paths(path, shared.get("images_dir"))
    found = next((c for c in tried if c.is_file()), None)
    return str(found or tried[min(1, len(tried) - 1)])


def resolve_image(item: WorkItem) -> Path:
    tried = candidates(item)
    for candidate in tried:
        if candidate.is_file():
            return candidate
    root = item.extra.get("images_dir", str(tried[0].parent))
    shown = ", ".join(str(c.relative_to(root)) if c.is_relative_to(root) else str(c) for c in tried)
    raise BadSample(
        tried[0],
        f"missing image: looked for {shown} under {root} (the official archives and mmdetection "
        f"unpack images as <images>/patchN/<file>.jpg, e.g. train/patch8/objects365_v1_00420917.jpg)",
    )


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    image = load_image(resolve_image(item))
    notes: dict[str, int] = {}
    boxes = boxes_for(tax, item, image.width, image.height, notes)
    return make_sample(item, image, None, boxes=boxes, notes=notes)
