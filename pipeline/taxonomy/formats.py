"""The annotation formats a taxonomy YAML may name, as plain data: their supervision kinds, the
format_options each reads, the module of its reader and its layout writer.

This is the ground floor both sides build on: `ssiw taxonomy validate` checks a YAML against it without
importing any reader, and `pipeline.convert.readers` turns each entry into the reader the converter runs.
"""

from __future__ import annotations

from dataclasses import dataclass

# Options of the readers that pair each label file with its image (pipeline/convert/readers/pairing.py).
PAIRING_OPTIONS = frozenset({"annotation_suffix", "image_suffix", "pair_by", "scene_list"})
DENSE = frozenset({"dense", "coarse"})
PAIRED, COCO = "paired:write_pairs", "coco:write_coco"  # layout writers several formats share


@dataclass(frozen=True)
class FormatInfo:
    """What a taxonomy YAML may say about one annotation format: plain data, no reader code."""

    name: str
    about: str
    supervision: frozenset[str]  # the taxonomy supervision kinds the reader can produce
    options: frozenset[str] = frozenset()  # the format_options keys the reader reads
    module: str = ""  # pipeline.convert.readers.<module>; defaults to the name
    layout: str = ""  # its layout writer: pipeline.convert.layouts.<module>:<function>
    # The reader's FORMAT VERSION: part of every shard's fingerprint, so bump it whenever the reader
    # would write different bytes for the same input (a fixed mapping, a new default): `ssiw convert`
    # then redoes that format's finished shards instead of keeping them.
    version: int = 1


FORMAT_INFO: dict[str, FormatInfo] = {
    f.name: f
    for f in [
        FormatInfo("ade20k", "ADE20K challenge PNGs (mode L, 0 = other) or full-ADE20K _seg.png (class = R/10*256+G)",
               DENSE, PAIRING_OPTIONS | {"variant", "map_from_ade"}, layout=PAIRED),
        FormatInfo("coco_panoptic", "COCO panoptic JSON + PNGs (segment id = R + 256*G + 256^2*B)", DENSE, layout=COCO),
        FormatInfo("mapillary", "Mapillary Vistas v1.2 / v2.0 palette PNGs (palette index is the class)",
               DENSE, PAIRING_OPTIONS | {"version"}, layout=PAIRED),
        FormatInfo("cityscapes", "Cityscapes *_gtFine_labelIds.png", DENSE, PAIRING_OPTIONS, "dense", PAIRED),
        FormatInfo("bdd100k", "BDD100K semantic masks (train ids in an L PNG)", DENSE, PAIRING_OPTIONS, "dense", PAIRED),
        FormatInfo("idd", "IDD level3 id PNGs, or _polygons.json rasterised with PIL",
               DENSE, PAIRING_OPTIONS | {"polygon_suffix", "polygon_label_to_level3"}, layout=PAIRED),
        FormatInfo("sunrgbd", "SUN RGB-D 37-class label PNGs as MSeg prepares them (semseg-label37/, 0..36, 255)",
               DENSE, PAIRING_OPTIONS, "dense", PAIRED),
        FormatInfo("openimages_v6", "OpenImages V6 segmentation CSV + per-object binary mask PNGs (noisy)", DENSE,
               layout="openimages:write_openimages"),
        FormatInfo("objects365", "Objects365 COCO-format JSON, boxes only", frozenset({"box"}), layout=COCO),
        FormatInfo("png_folder", "generic index-valued L/P PNGs, or colour-coded RGB with a colour per class",
               DENSE, PAIRING_OPTIONS | {"mode", "ignore_colors"}, layout=PAIRED),
        FormatInfo("coco_instances", "generic COCO instances JSON (RLE or polygons via pycocotools)",
               DENSE | {"box"}, layout=COCO),
        FormatInfo("youtube_vis", "YouTube-VIS instances JSON (per-frame RLE per object track) + per-video frame folders",
               DENSE, frozenset({"frames"}), layout="youtube_vis:write_youtube_vis"),
    ]
}
