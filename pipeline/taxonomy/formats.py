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
               DENSE, PAIRING_OPTIONS | {"mode", "ignore_colors", "color_tolerance"}, layout=PAIRED),
        FormatInfo("coco_instances", "generic COCO instances JSON (RLE or polygons via pycocotools)",
               DENSE | {"box"}, layout=COCO),
        FormatInfo("youtube_vis", "YouTube-VIS instances JSON (per-frame RLE per object track) + per-video frame folders",
               DENSE, frozenset({"frames"}), layout="youtube_vis:write_youtube_vis"),
    ]
}


@dataclass(frozen=True)
class OptionInfo:
    """One format_options key: what it means, the value a reader uses when it is absent, and what a
    value must be (plain data, checked by `ssiw taxonomy validate` before any reader runs)."""

    name: str
    about: str
    default: object = None  # None: absent means "not used"
    choices: tuple = ()  # the allowed values, when a fixed set
    kind: str = "text"  # text | number | colours (a list of [r, g, b]) | mapping


OPTION_INFO: dict[str, OptionInfo] = {
    o.name: o
    for o in [
        OptionInfo("annotation_suffix", "a label file's stem ends with this; stripped before pairing ('_mask')", ""),
        OptionInfo("image_suffix", "an image's stem ends with this; stripped before pairing ('_sat')", ""),
        OptionInfo("pair_by", "pair an image and its label file by stem, or by the last number in the stem",
                   "stem", ("stem", "number")),
        OptionInfo("scene_list", "text file of the split's scene folders, relative to the root ('{split}' is "
                   "replaced by the split name)"),
        OptionInfo("variant", "challenge PNGs, or full-ADE20K _seg.png", "challenge", ("challenge", "full")),
        OptionInfo("map_from_ade", "variant full: the mapFromADE table, relative to the root", "mapFromADE.txt"),
        OptionInfo("version", "the release folder the labels come from (v1.2, v2.0): checked against the splits"),
        OptionInfo("polygon_suffix", "the polygon JSONs' stem suffix", "_gtFine_polygons"),
        OptionInfo("polygon_label_to_level3", "polygon label name -> level3 id, for the polygon JSONs",
                   kind="mapping"),
        OptionInfo("mode", "index: the pixel value is the raw id; color: each class has `color: [r, g, b]`",
                   "index", ("index", "color")),
        OptionInfo("ignore_colors", "mode color: colours written as ignore, a list of [r, g, b]", [],
                   kind="colours"),
        OptionInfo("color_tolerance", "mode color: a pixel within this RGB distance of one class colour (and "
                   "nearer it than any other) counts as that colour; 0: exact colours only. DeepGlobe's "
                   "release says to binarize at 128: try 100", 0, kind="number"),
        OptionInfo("frames", "with_classes: only frames where a listed class has a mask; all: every frame",
                   "with_classes", ("with_classes", "all")),
    ]
}


def _is_colour(value: object) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 3
            and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value))


def _value_problem(option: OptionInfo, value: object) -> str | None:
    if option.choices and value not in option.choices:
        return f"must be one of {', '.join(map(repr, option.choices))}, not {value!r}"
    if option.kind == "text" and not isinstance(value, str):
        return f"must be text, not {value!r}"
    if option.kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
        return f"must be a number >= 0, not {value!r}"
    if option.kind == "mapping" and not isinstance(value, dict):
        return f"must be a mapping, not {value!r}"
    if option.kind == "colours" and not (isinstance(value, list) and all(_is_colour(c) for c in value)):
        return f"must be a list of [r, g, b] colours (0..255), not {value!r}"
    return None


def option_problems(tax) -> list[tuple[str, str]]:
    """(where, message) for each format_options problem of a taxonomy: unknown names, bad values, and
    what a format's mode needs of the classes. `tax` is a DatasetTaxonomy (not imported: plain data)."""
    info = FORMAT_INFO.get(tax.format)
    if info is None:
        return []  # an unknown format is reported on its own
    problems = []
    for key, value in tax.format_options.items():
        where = f"format_options.{key}"
        if key not in info.options:
            reads = ", ".join(sorted(info.options)) or "none"
            problems.append((where, f"means nothing to the {tax.format!r} reader (it reads: {reads})"))
        elif (message := _value_problem(OPTION_INFO[key], value)) is not None:
            problems.append((where, message))
    if tax.format == "png_folder":
        problems += _png_folder_problems(tax)
    return problems


def _png_folder_problems(tax) -> list[tuple[str, str]]:
    colour = tax.format_options.get("mode", "index") == "color"
    problems = []
    if not colour:
        for key in ("ignore_colors", "color_tolerance"):
            if key in tax.format_options:
                problems.append((f"format_options.{key}", "only mode color reads it (add `mode: color`)"))
    for index, entry in enumerate(tax.classes):
        where = f"classes[{index}] {entry.name!r}"
        if colour and entry.color is None:
            problems.append((f"{where}.color", "mode color needs `color: [r, g, b]` for every class"))
        if not colour and not entry.all_raw_ids:
            problems.append((where, "mode index needs the class's pixel value: `raw_id: N`"))
    return problems


# Where a split's files are, per layout (or per format where it differs), for the minimal examples.
_EXAMPLE_SPLITS = {
    PAIRED: {"images": "train/images", "annotations": "train/labels"},
    COCO: {"images": "train2017", "index": "annotations/instances_train2017.json"},
    "coco_panoptic": {"images": "train2017", "annotations": "annotations/panoptic_train2017",
                      "index": "annotations/panoptic_train2017.json"},
    "openimages:write_openimages": {"images": "train/*.jpg", "annotations": "train-masks",
                                    "index": "train-annotations-object-segmentation.csv"},
    "youtube_vis:write_youtube_vis": {"images": "train/JPEGImages", "index": "train/instances.json"},
}


def example_yaml(name: str, colour: bool = False) -> dict:
    """A minimal taxonomy YAML for one format (png_folder: index or colour mode): valid as it is,
    with the shipped registry's labels."""
    info = FORMAT_INFO[name]
    supervision = "box" if info.supervision == frozenset({"box"}) else "dense"
    doc: dict = {"name": "my-dataset", "version": "1", "homepage": "https://example.org", "format": name,
                 "supervision": supervision,
                 "splits": {"train": dict(_EXAMPLE_SPLITS.get(name) or _EXAMPLE_SPLITS[info.layout])}}
    if name == "openimages_v6":  # raw ids are the dataset's MIDs
        doc["classes"] = [{"name": "Person", "label": "person", "raw_id": "/m/01g317"},
                          {"name": "Car", "label": "car", "raw_id": "/m/0k4j"}]
        return doc
    if colour:
        doc["format_options"] = {"mode": "color", "ignore_colors": [[0, 0, 0]]}
        doc["classes"] = [{"name": "road", "label": "road", "color": [128, 64, 128]},
                          {"name": "building", "label": "building", "color": [70, 70, 70]}]
        return doc
    if info.layout == PAIRED:
        doc["ignore_values"] = [0]  # the pixel value of unlabelled pixels
    doc["classes"] = [{"name": "road", "label": "road", "raw_id": 1}, {"name": "building", "label": "building",
                                                                        "raw_id": 2}]
    return doc
