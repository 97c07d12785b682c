"""Format readers, by the format name a taxonomy YAML gives (pipeline/taxonomy/formats.py)."""

from __future__ import annotations

from pipeline.convert.readers import (
    ade20k,
    bdd100k,
    cityscapes,
    coco_instances,
    coco_panoptic,
    idd,
    mapillary,
    objects365,
    openimages_v6,
    png_folder,
    sunrgbd,
)
from pipeline.convert.readers.base import BadSample, FunctionReader, Sample, WorkItem

READERS: dict[str, FunctionReader] = {
    "ade20k": ade20k.READER,
    "coco_panoptic": coco_panoptic.READER,
    "mapillary": mapillary.READER,
    "cityscapes": cityscapes.READER,
    "bdd100k": bdd100k.READER,
    "idd": idd.READER,
    "sunrgbd": sunrgbd.READER,
    "openimages_v6": openimages_v6.READER,
    "objects365": objects365.READER,
    "png_folder": png_folder.READER,
    "coco_instances": coco_instances.READER,
}


def get_reader(name: str) -> FunctionReader:
    if name not in READERS:
        raise KeyError(f"no reader for format {name!r}; known: {', '.join(sorted(READERS))}")
    return READERS[name]


__all__ = ["READERS", "BadSample", "FunctionReader", "Sample", "WorkItem", "get_reader"]
