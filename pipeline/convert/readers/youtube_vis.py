"""YouTube-VIS instance annotations (2019 / 2021 layout) as per-frame class maps.

Split: images (the JPEGImages folder; each video's `file_names` are relative to it) and index (the
instances JSON). The JSON holds `videos` (id, file_names, height, width, length), `annotations`
(one per object track: video_id, category_id, and `segmentations`, one entry per frame: an RLE
with uncompressed `counts` lists or compressed strings, or null where the object is absent) and
`categories`.

Each annotated frame becomes one sample: its instances' masks painted with their class (larger
first, so a small object on a larger one survives). Pixels no mask covers take raw id 0
("background"), which the taxonomy maps like any raw id (usually `ignore_values: [0]`). A category
the taxonomy neither lists nor ignores is an error for that frame (quarantine), never a class.

Option `frames`: `with_classes` (default) keeps only frames where a class of the taxonomy that is
not ignored has a mask (the unseen-label test's frames); `all` keeps every annotated frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.convert.readers.base import BadSample, Sample, WorkItem
from pipeline.convert.readers.coco_instances import instance_masks
from pipeline.convert.readers.cocojson import load_json, split_paths, unique_sorted
from pipeline.convert.readers.common import class_of, load_image, make_sample, paint, relative, sanitize_key
from pipeline.names import inside, relative_problem
from pipeline.taxonomy.schema import DatasetTaxonomy

BACKGROUND = 0  # raw id of pixels no instance covers


def _load(index: Path) -> tuple[list[dict], dict[object, list[dict]]]:
    data = load_json(index)
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise BadSample(index, "malformed JSON: expected an object with a 'videos' list")
    annotations = data.get("annotations") or []
    if not isinstance(annotations, list):
        raise BadSample(index, "malformed JSON: 'annotations' is not a list")
    by_video: dict[object, list[dict]] = {}
    for n, ann in enumerate(annotations):
        if not isinstance(ann, dict) or "video_id" not in ann:
            raise BadSample(index, f"malformed JSON: annotations[{n}] has no 'video_id'")
        by_video.setdefault(ann["video_id"], []).append(ann)
    return data["videos"], by_video


def plan(tax: DatasetTaxonomy, root: Path, split: str) -> Iterator[WorkItem]:
    frames_mode = tax.format_options.get("frames", "with_classes")
    if frames_mode not in ("with_classes", "all"):
        raise ValueError(f"{tax.name}: format_options.frames must be 'with_classes' or 'all', not {frames_mode!r}")
    root = Path(root)
    index, images_dir, _ = split_paths(tax, root, split)
    videos, by_video = _load(index)
    wanted = {raw for c in tax.classes if not c.ignore for raw in c.all_raw_ids}
    items = []
    for n, video in enumerate(videos):
        names = video.get("file_names") if isinstance(video, dict) else None
        if not isinstance(names, list) or "id" not in video:
            raise BadSample(index, f"malformed JSON: videos[{n}] lacks 'id' or 'file_names'")
        tracks = by_video.get(video["id"], [])
        for f, name in enumerate(names):
            masks, error = [], None
            for ann in tracks:
                segs = ann.get("segmentations")
                if not isinstance(segs, list) or len(segs) != len(names):
                    error = (f"video {video['id']}: annotation {ann.get('id')!r} has "
                             f"{len(segs) if isinstance(segs, list) else 'no'} segmentations for {len(names)} frames")
                    continue
                if segs[f] is not None:
                    masks.append((segs[f], ann.get("category_id")))
            if not masks and error is None:
                continue  # no object annotated in this frame
            if frames_mode == "with_classes" and error is None and not any(c in wanted for _, c in masks):
                continue
            image = inside(images_dir, name) if isinstance(name, str) else None
            if image is None:  # never read a frame outside the images folder
                error = f"video {video['id']}: file_names[{f}] {relative_problem(name)}: not read"
                image = images_dir / f"video-{video['id']}-frame-{f}"
                name = image.name
            extra = {"height": video.get("height"), "width": video.get("width"), "masks": masks}
            items.append(WorkItem(key=sanitize_key(Path(name).with_suffix("").as_posix().replace("/", "_")),
                                  image=str(image), extra=extra, sources={"image": relative(image, root)},
                                  index=str(index), error=error))
    return iter(unique_sorted(items, f"{tax.name}/{split}"))


def read(tax: DatasetTaxonomy, item: WorkItem) -> Sample:
    image = load_image(item.image)
    width, height = image.width, image.height
    background = class_of(tax, BACKGROUND, item.index or item.image, "background (pixels no object covers): raw id")
    masks = instance_masks(tax, item, width, height, "frame")
    label = paint(masks, height, width, tax.ignore_index, tax.label_dtype)
    if background != tax.ignore_index:
        covered = paint([(m, 1) for m, _ in masks], height, width, 0, "uint8").astype(bool)
        label[~covered] = background
    return make_sample(item, image, label)
