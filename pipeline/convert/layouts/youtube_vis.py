"""Layout writer of YouTube-VIS: frames under the split's images folder as <video>/<frame>.jpg, and one
instances JSON whose annotations hold one RLE per frame per object track (null where the object is
absent), encoded with pycocotools as the release does (compressed string counts) or as uncompressed
count lists, which the release format also allows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.convert.layouts import Files
from pipeline.taxonomy.schema import DatasetTaxonomy


@dataclass(frozen=True)
class Track:
    category_id: int
    masks: list[np.ndarray | None]  # one H x W mask per frame, None where the object is absent


@dataclass(frozen=True)
class Video:
    name: str  # the folder of its frames, e.g. "0043f083b5"
    frames: list[bytes]  # JPEG bytes, one per annotated frame
    width: int
    height: int
    tracks: list[Track] = field(default_factory=list)
    id: int | None = None


def rle(mask: np.ndarray, compressed: bool = True) -> dict:
    """A binary mask as COCO RLE: compressed counts string, or the uncompressed list of run lengths
    (column-major, starting with a run of zeros)."""
    from pycocotools import mask as mask_utils

    if compressed:
        r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")}
    flat = mask.astype(np.uint8).ravel(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


def write_youtube_vis(tax: DatasetTaxonomy, root: Path, split: str, videos: list[Video],
                      categories: list[dict] | None = None, compressed: bool = True) -> dict[str, Path]:
    """Returns frame key (<video>_<frame stem>) -> frame file."""
    spec = tax.splits[split]
    assert spec.index, f"{tax.name}/{split}: youtube_vis needs index"
    files, placed = Files(), {}
    doc = {"info": {"description": tax.name}, "licenses": [], "videos": [], "annotations": [],
           "categories": categories if categories is not None else
           [{"id": c.raw_id, "name": c.name, "supercategory": "object"} for c in tax.classes]}
    for n, video in enumerate(videos):
        vid = video.id if video.id is not None else n + 1
        names = [f"{video.name}/{5 * f:05d}.jpg" for f in range(len(video.frames))]
        for name, data in zip(names, video.frames):
            placed[name[:-4].replace("/", "_")] = files.put(root / spec.images / name, data)
        doc["videos"].append({"id": vid, "width": video.width, "height": video.height, "length": len(names),
                              "file_names": names})
        for t in video.tracks:
            assert len(t.masks) == len(names), f"{video.name}: a track needs one mask (or None) per frame"
            doc["annotations"].append({
                "id": len(doc["annotations"]) + 1, "video_id": vid, "category_id": t.category_id, "iscrowd": 0,
                "segmentations": [None if m is None else rle(m, compressed) for m in t.masks],
                "areas": [None if m is None else int(m.sum()) for m in t.masks],
                "bboxes": [None] * len(names), "height": video.height, "width": video.width,
            })
    files.put(root / spec.index, json.dumps(doc).encode())
    return placed
