"""Write the demo corpus: five small datasets in real on-disk layouts, with taxonomy YAMLs as a user writes them.

- demo-ade: ADE20K challenge layout (L PNGs, 0 = other), dense.
- demo-coco: COCO panoptic layout (JSON + id PNGs), dense; 'automobile', and 'pedestrian' / 'rider' split,
  'vegetation' merging tree and grass.
- demo-openimages: OpenImages V6 layout (CSV + per-object masks), coarse: training masks are deliberately
  noisy (dilated, eroded, parts missing, low resolution); validation masks are clean.
- demo-objects365: Objects365 layout (COCO-format JSON), boxes only.
- demo-heldout: a plain PNG folder for zero-shot evaluation, whose class names no training taxonomy uses.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from pipeline.convert.layouts.coco import CocoImage
from pipeline.convert.layouts.openimages import ObjectMask, OpenImagesImage
from pipeline.convert.layouts.paired import Pair
from pipeline.convert.readers import FORMATS
from pipeline.demo import scenes as S
from pipeline.demo.scenes import Domain, Scene, render_scene
from pipeline.taxonomy.schema import DatasetTaxonomy
from pipeline.taxonomy.yaml_io import dump_yaml

DOMAINS = {
    "demo-ade": Domain(),
    "demo-coco": Domain(gain=(1.08, 0.98, 0.85), bias=(12, 4, -6), gamma=0.9, noise=5, saturation=1.2),
    "demo-openimages": Domain(gain=(0.85, 0.95, 1.1), bias=(-5, 0, 10), gamma=1.15, noise=6, saturation=0.8),
    "demo-objects365": Domain(gain=(1.05, 1.05, 1.05), bias=(15, 15, 15), noise=8, blur=0.5),
    "demo-heldout": Domain(gain=(0.95, 1.05, 0.95), bias=(5, 8, -4), gamma=1.05, noise=5, blur=0.4, saturation=0.9),
}

# Registry labels of the demo world, in our own words. A user adding datasets writes the same.
LABELS = {
    "sky": ("sky", "Sky", "nature", "The sky is the expanse of air above the ground, blue by day and often holding clouds."),
    "grass": ("grass", "Poaceae", "nature", "Grass is a low green plant with narrow leaves that covers lawns, meadows and fields."),
    "vegetation": ("vegetation", "Vegetation", "nature",
                   "Vegetation is the plant cover of an area taken together: trees, bushes and grass."),
    "road": ("road", "Road", "ground", "A road is a paved strip of ground, usually grey asphalt, on which cars and bicycles travel."),
    "building": ("building", "Building", "structures",
                 "A building is a roofed structure with walls and windows, such as a house or an office block."),
    "tree": ("tree", "Tree", "nature", "A tree is a tall woody plant with a single trunk and a crown of green leafy branches."),
    "car": ("car", "Car", "vehicles", "A car is a four-wheeled motor vehicle with a closed body that carries a few passengers on roads."),
    "person": ("person", "Person", "people", "A person is a human being: a man, woman or child standing or walking upright."),
    "pedestrian": ("pedestrian", "Pedestrian", "people", "A pedestrian is a person travelling on foot, walking along or across a street."),
    "rider": ("rider", "Cycling", "people", "A rider is a person sitting on and steering a bicycle or motorcycle."),
    "bicycle": ("bicycle", "Bicycle", "vehicles", "A bicycle is a light two-wheeled vehicle with pedals and a frame, moved by its rider's legs."),
    "dog": ("dog", "Dog", "animals", "A dog is a domesticated four-legged mammal with fur, a tail and a keen sense of smell, kept as a pet."),
    # Held-out evaluation labels: names no training taxonomy uses.
    "firmament": ("firmament", "Firmament", "nature",
                  "The firmament is the vault of the heavens overhead, the blue dome where clouds drift by day."),
    "lawn": ("lawn", "Lawn", "nature", "A lawn is ground covered with short, regularly mown green grass, as in a garden or park."),
    "roadway": ("roadway", "Carriageway", "ground",
                "A roadway is the paved part of a street that vehicles drive along, between its kerbs."),
    "edifice": ("edifice", "Edifice", "structures",
                "An edifice is a large constructed building such as a block of flats, with walls, floors and rows of windows."),
    "grove": ("grove", "Grove (nature)", "nature", "A grove is a small group of trees with trunks and leafy crowns standing together."),
    "motorcar": ("motorcar", "Automobile", "vehicles",
                 "A motorcar is an automobile: a passenger vehicle with an engine and four wheels driven on roads."),
    "human": ("human", "Human", "people", "A human is a member of our own species, a man, woman or child with a head, arms and legs."),
    "hound": ("hound", "Hound", "animals", "A hound is a dog, a furry four-legged animal bred to follow a scent or hunt with people."),
}

# Concept -> (raw id, class name, label) for each dataset; concepts absent are not annotated there.
ADE_CLASSES = {S.SKY: (1, "sky", "sky"), S.TREE: (2, "tree", "tree"), S.GRASS: (3, "grass", "grass"),
               S.ROAD: (4, "road", "road"), S.BUILDING: (5, "building", "building"), S.CAR: (6, "car", "car"),
               S.PERSON: (7, "person", "person"), S.RIDER: (7, "person", "person"), S.DOG: (8, "dog", "dog")}
COCO_CLASSES = {S.PERSON: (1, "pedestrian", "pedestrian"), S.RIDER: (2, "rider", "rider"),
                S.BICYCLE: (3, "bicycle", "bicycle"), S.CAR: (4, "automobile", "car"), S.DOG: (5, "dog", "dog"),
                S.SKY: (40, "sky-other-merged", "sky"), S.TREE: (41, "vegetation-merged", "vegetation"),
                S.GRASS: (41, "vegetation-merged", "vegetation"), S.ROAD: (42, "road", "road"),
                S.BUILDING: (43, "building-other-merged", "building")}
OPENIMAGES_CLASSES = {S.CAR: ("/m/0k4j", "Car", "car"), S.PERSON: ("/m/01g317", "Person", "person"),
                      S.RIDER: ("/m/01g317", "Person", "person"), S.BICYCLE: ("/m/0199g", "Bicycle", "bicycle"),
                      S.DOG: ("/m/0bt9lr", "Dog", "dog"), S.TREE: ("/m/07j7r", "Tree", "tree"),
                      S.BUILDING: ("/m/0cgh4", "Building", "building")}
OBJECTS365_CLASSES = {S.PERSON: (1, "Person", "person"), S.RIDER: (1, "Person", "person"),
                      S.CAR: (2, "Car", "car"), S.BICYCLE: (3, "Bicycle", "bicycle"), S.DOG: (4, "Dog", "dog")}
HELDOUT_CLASSES = {S.SKY: (1, "firmament", "firmament"), S.GRASS: (2, "lawn", "lawn"),
                   S.ROAD: (3, "roadway", "roadway"), S.BUILDING: (4, "edifice", "edifice"),
                   S.TREE: (5, "grove", "grove"), S.CAR: (6, "motorcar", "motorcar"),
                   S.PERSON: (7, "human", "human"), S.RIDER: (7, "human", "human"), S.DOG: (8, "hound", "hound")}


@dataclass(frozen=True)
class CorpusSize:
    train: int = 160
    val: int = 40
    image_size: int = 128


def _class_list(table: dict) -> list[dict]:
    """Unique classes in raw-id order, as YAML class entries."""
    seen: dict = {}
    for raw, name, label in table.values():
        seen.setdefault(raw, {"raw_id": raw, "name": name, "label": label})
    return [seen[k] for k in sorted(seen, key=lambda r: (isinstance(r, str), r))]


def _raw_map(concepts: np.ndarray, table: dict, background) -> np.ndarray:
    out = np.full(concepts.shape, background, dtype=np.int64)
    for concept, (raw, _, _) in table.items():
        out[concepts == concept] = raw
    return out


def _scenes(name: str, count: int, size: int, seed: int):
    rng = np.random.default_rng(seed)
    for i in range(count):
        yield i, render_scene(rng, size, DOMAINS[name])


def _jpeg(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def write_ade(tax: DatasetTaxonomy, root: Path, size: CorpusSize, seed: int) -> None:
    for split, count, prefix in (("training", size.train, "ADE_train"), ("validation", size.val, "ADE_val")):
        pairs = [Pair(f"{prefix}_{i + 1:08d}", _jpeg(scene.image), _raw_map(scene.concepts, ADE_CLASSES, 0))
                 for i, scene in _scenes("demo-ade", count, size.image_size, seed + (split == "validation"))]
        FORMATS[tax.format].write_layout(tax, root, split, pairs)


def write_coco_panoptic(tax: DatasetTaxonomy, root: Path, size: CorpusSize, seed: int) -> None:
    categories = [{"id": c["raw_id"], "name": c["name"], "isthing": int(c["raw_id"] < 40), "supercategory": "demo",
                   "color": [int(c["raw_id"]) * 5 % 255, 120, 200]} for c in _class_list(COCO_CLASSES)]
    for split, count in (("train2017", size.train), ("val2017", size.val)):
        images = []
        for i, scene in _scenes("demo-coco", count, size.image_size, seed + 10 + (split == "val2017")):
            ids, segments = _panoptic_segments(scene)
            h, w = scene.concepts.shape
            images.append(CocoImage(i + 1, f"{i + 1:012d}.jpg", w, h, _jpeg(scene.image), segments, ids))
        FORMATS[tax.format].write_layout(tax, root, split, images, categories=categories,
                                         info={"description": "ssiw demo"}, licenses=[])


def _panoptic_segments(scene: Scene) -> tuple[np.ndarray, list[dict]]:
    """One segment per thing instance; stuff of one category merges into one segment, like COCO."""
    ids = np.zeros(scene.concepts.shape, dtype=np.int64)
    segments: list[dict] = []
    by_category: dict[int, int] = {}
    for instance, concept in scene.objects:
        mask = (scene.instances == instance) & (scene.concepts == concept)
        if concept not in COCO_CLASSES or not mask.any():
            continue
        category = COCO_CLASSES[concept][0]
        isthing = category < 40
        if not isthing and category in by_category:
            segment_id = by_category[category]
        else:
            segment_id = (len(segments) + 1) * 256 + category  # unique, and uses two PNG channels
            segments.append({"id": segment_id, "category_id": category, "iscrowd": 0, "area": 0, "bbox": [0, 0, 0, 0]})
            by_category[category] = segment_id
        ids[mask] = segment_id
    for seg in segments:
        ys, xs = np.nonzero(ids == seg["id"])
        seg["area"] = len(xs)
        if len(xs):
            seg["bbox"] = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
    return ids, [s for s in segments if s["area"] > 0]


def _noisy(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Degrade a mask the way crowd-sourced polygons go wrong: grown or shrunk, bits missing, coarse."""
    img = Image.fromarray(mask.astype(np.uint8) * 255)
    k = int(rng.choice([3, 5]))
    img = img.filter(ImageFilter.MaxFilter(k) if rng.random() < 0.5 else ImageFilter.MinFilter(k))
    out = np.asarray(img) > 127
    if rng.random() < 0.5 and out.any():
        ys, xs = np.nonzero(out)
        cy, cx = int(rng.choice(ys)), int(rng.choice(xs))
        r = max(2, int(np.sqrt(out.sum()) * 0.35))
        out = out.copy()
        out[max(0, cy - r):cy + r, max(0, cx - r):cx + r] = False
    return out


def write_openimages(tax: DatasetTaxonomy, root: Path, size: CorpusSize, seed: int) -> None:
    for split, count in (("train", size.train), ("validation", size.val)):
        rng = np.random.default_rng(seed + 20 + (split == "validation"))
        images = []
        for i, scene in _scenes("demo-openimages", count, size.image_size, seed + 30 + (split == "validation")):
            masks = []
            h, w = scene.concepts.shape
            for instance, concept in scene.objects:
                if concept not in OPENIMAGES_CLASSES:
                    continue
                mask = (scene.instances == instance) & (scene.concepts == concept)
                if mask.sum() < 12:
                    continue
                if split == "train":  # validation stays clean: it measures what the noisy masks cost
                    mask = _noisy(mask, rng)
                    if not mask.any():
                        continue
                ys, xs = np.nonzero(mask)
                small = Image.fromarray(mask.astype(np.uint8) * 255).resize((w // 2, h // 2), Image.NEAREST)
                box = (xs.min() / w, (xs.max() + 1) / w, ys.min() / h, (ys.max() + 1) / h)
                masks.append(ObjectMask(OPENIMAGES_CLASSES[concept][0], f"{instance:08x}", np.asarray(small), box))
            images.append(OpenImagesImage(f"{seed:04x}{i:012x}"[-16:], _jpeg(scene.image), masks))
        FORMATS[tax.format].write_layout(tax, root, split, images)


def write_objects365(tax: DatasetTaxonomy, root: Path, size: CorpusSize, seed: int) -> None:
    for split, count in (("train", size.train), ("val", size.val)):
        images, n_boxes = [], 0
        for i, scene in _scenes("demo-objects365", count, size.image_size, seed + 40 + (split == "val")):
            h, w = scene.concepts.shape
            boxes = []
            for instance, concept in scene.objects:
                if concept not in OBJECTS365_CLASSES:
                    continue
                ys, xs = np.nonzero((scene.instances == instance) & (scene.concepts == concept))
                if len(xs) < 12:
                    continue
                bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
                n_boxes += 1
                boxes.append({"id": n_boxes, "image_id": i + 1, "bbox": bbox, "iscrowd": 0,
                              "area": bbox[2] * bbox[3], "category_id": OBJECTS365_CLASSES[concept][0]})
            images.append(CocoImage(i + 1, f"objects365_demo_{i:08d}.jpg", w, h, _jpeg(scene.image), boxes))
        FORMATS[tax.format].write_layout(tax, root, split, images)


def write_heldout(tax: DatasetTaxonomy, root: Path, size: CorpusSize, seed: int) -> None:
    pairs = [Pair(f"heldout_{i:05d}", _jpeg(scene.image), _raw_map(scene.concepts, HELDOUT_CLASSES, 0))
             for i, scene in _scenes("demo-heldout", size.val, size.image_size, seed + 50)]
    FORMATS[tax.format].write_layout(tax, root, "val", pairs)


def _taxonomy(name, fmt, supervision, role, splits, classes, ignore, options=None, notes=None) -> dict:
    doc = {"name": name, "version": "demo", "homepage": "https://example.org/ssiw-demo", "format": fmt,
           "supervision": supervision, "role": role, "declared_classes": len(classes), "splits": splits,
           "ignore_values": ignore, "format_options": options or {}, "classes": classes}
    if notes:
        doc["notes"] = notes
    return doc


def taxonomies() -> dict[str, dict]:
    return {
        "demo-ade": _taxonomy("demo-ade", "ade20k", "dense", "train", {
            "training": {"images": "images/training/*.jpg", "annotations": "annotations/training/*.png"},
            "validation": {"images": "images/validation/*.jpg", "annotations": "annotations/validation/*.png"},
        }, _class_list(ADE_CLASSES), [0], {"variant": "challenge"}),
        "demo-coco": _taxonomy("demo-coco", "coco_panoptic", "dense", "train", {
            "train2017": {"images": "train2017", "annotations": "annotations/panoptic_train2017",
                          "index": "annotations/panoptic_train2017.json"},
            "val2017": {"images": "val2017", "annotations": "annotations/panoptic_val2017",
                        "index": "annotations/panoptic_val2017.json"},
        }, _class_list(COCO_CLASSES), []),
        "demo-openimages": _taxonomy("demo-openimages", "openimages_v6", "coarse", "train", {
            "train": {"images": "train/*.jpg", "annotations": "train-masks",
                      "index": "train-annotations-object-segmentation.csv"},
            "validation": {"images": "validation/*.jpg", "annotations": "validation-masks",
                           "index": "validation-annotations-object-segmentation.csv"},
        }, _class_list(OPENIMAGES_CLASSES), [], notes="training masks are deliberately noisy; validation is clean"),
        "demo-objects365": _taxonomy("demo-objects365", "objects365", "box", "train", {
            "train": {"images": "images/train", "index": "annotations/zhiyuan_objv2_train.json"},
            "val": {"images": "images/val", "index": "annotations/zhiyuan_objv2_val.json"},
        }, _class_list(OBJECTS365_CLASSES), []),
        "demo-heldout": _taxonomy("demo-heldout", "png_folder", "dense", "eval", {
            "val": {"images": "images/val/*.jpg", "annotations": "annotations/val/*.png"},
        }, _class_list(HELDOUT_CLASSES), [0], {"mode": "index"}),
    }


WRITERS = {"demo-ade": write_ade, "demo-coco": write_coco_panoptic, "demo-openimages": write_openimages,
           "demo-objects365": write_objects365, "demo-heldout": write_heldout}


def write_corpus(out: Path, size: CorpusSize = CorpusSize(), seed: int = 0) -> dict[str, Path]:
    """Write every dataset under out/data, taxonomies under out/taxonomies; return dataset -> root."""
    tax_dir = out / "taxonomies"
    tax_dir.mkdir(parents=True, exist_ok=True)
    labels = {key: {"name": n, "wikipedia": w, "group": g, "description": d} for key, (n, w, g, d) in LABELS.items()}
    (tax_dir / "labels.yaml").write_text("# The demo world's label registry.\n" + dump_yaml({"standalone": True, "labels": labels}))
    roots = {}
    for name, doc in taxonomies().items():
        (tax_dir / f"{name}.yaml").write_text(dump_yaml(doc))
        root = out / "data" / name
        WRITERS[name](DatasetTaxonomy.model_validate(doc), root, size, seed)
        roots[name] = root
    (out / "roots.yaml").write_text(dump_yaml({name: str(path.resolve()) for name, path in roots.items()}))
    return roots
