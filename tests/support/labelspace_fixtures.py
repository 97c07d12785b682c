"""A small taxonomy folder for the describe / embed / labels tests (the shipped one is still changing).

Two datasets share some labels; `beta` overrides the description of one class, so it gets its own
embedding row. Groups are picked so the separation score has something to separate.
"""

from __future__ import annotations

import functools
from pathlib import Path

REGISTRY = """
standalone: true  # a whole taxonomy set, not a layer over the shipped one
labels:
  cat: {name: cat, wikipedia: Cat, group: animals, description: A cat is a small furry carnivorous mammal kept as a pet.}
  dog: {name: dog, wikipedia: Dog, group: animals, description: A dog is a domesticated descendant of the wolf kept as a pet.}
  horse: {name: horse, wikipedia: Horse, group: animals, description: A horse is a large hoofed mammal used for riding.}
  bus: {name: bus, wikipedia: Bus, group: vehicles, description: A bus is a large road vehicle that carries many passengers.}
  truck: {name: truck, wikipedia: Truck, group: vehicles, description: A truck is a motor vehicle designed to carry cargo.}
  car: {name: car, wikipedia: Car, group: vehicles, description: A car is a motor vehicle with four wheels for carrying people.}
  automobile: {name: automobile, wikipedia: Automobile, group: vehicles, description: An automobile is a motor car with four wheels for carrying people.}
  road: {name: road, wikipedia: Road, group: ground, description: A road is a wide paved way for vehicles to travel on.}
  sidewalk: {name: sidewalk, wikipedia: Sidewalk, group: ground, description: A sidewalk is a paved path for pedestrians beside a road.}
  sky: {name: sky, wikipedia: Sky, group: nature, description: The sky is everything above the surface of the Earth seen from the ground.}
"""

ALPHA = """
name: alpha
version: "1"
homepage: https://example.org/alpha
format: png_folder
supervision: dense
splits:
  train: {images: "img/*.jpg", annotations: "ann/*.png"}
classes:
  - {raw_id: 1, name: road, label: road}
  - {raw_id: 2, name: car, label: car}
  - {raw_id: 3, name: bus, label: bus}
  - {raw_id: 4, name: sky, label: sky}
  - {raw_id: 5, name: dog, label: dog}
"""

BETA = """
name: beta
version: "1"
homepage: https://example.org/beta
format: png_folder
supervision: dense
splits:
  train: {images: "img/*.jpg", annotations: "ann/*.png"}
classes:
  - {raw_id: 10, name: automobile, label: automobile}
  - {raw_id: 11, name: lorry, label: truck}
  - {raw_id: 12, name: pavement, label: sidewalk, description: A pavement is a paved footpath at the side of a road.}
  - {raw_id: 13, name: cat, label: cat}
  - {raw_id: 14, name: horse, label: horse}
  - {raw_id: 15, name: sky, label: sky}
"""


def write_taxonomy(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.yaml").write_text(REGISTRY)
    (folder / "alpha.yaml").write_text(ALPHA)
    (folder / "beta.yaml").write_text(BETA)
    return folder


def load_small_taxonomy(folder: Path):
    from pipeline.taxonomy.load import load_taxonomy_set

    return load_taxonomy_set(write_taxonomy(folder))


@functools.lru_cache(maxsize=1)
def shared_minilm():
    """One MiniLM for the whole test session, whichever module asks first."""
    from pipeline.embed.encoders import get_encoder

    encoder = get_encoder("minilm", "cpu")
    encoder.model()
    return encoder
