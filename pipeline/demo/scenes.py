"""Procedural street scenes with exact per-pixel concept and instance maps.

Every scene is drawn twice with the same geometry: once in colour (the image) and once as ids
(concept map + instance map), so each dataset writer can express the same truth in its own format.
Concepts are visually learnable from shape and texture; each domain then shifts colour statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Concept ids used inside the generator only; datasets map them to their own raw ids.
NONE, SKY, GRASS, ROAD, BUILDING, TREE, CAR, PERSON, RIDER, BICYCLE, DOG = range(11)
CONCEPT_NAMES = {
    SKY: "sky", GRASS: "grass", ROAD: "road", BUILDING: "building", TREE: "tree", CAR: "car",
    PERSON: "person", RIDER: "rider", BICYCLE: "bicycle", DOG: "dog",
}
THINGS = (CAR, PERSON, RIDER, BICYCLE, DOG, TREE, BUILDING)


@dataclass(frozen=True)
class Domain:
    """Colour statistics of one dataset's camera: per-channel gain and bias, gamma, noise, blur."""

    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    gamma: float = 1.0
    noise: float = 4.0
    blur: float = 0.0
    saturation: float = 1.0


@dataclass
class Scene:
    image: np.ndarray  # HxWx3 uint8
    concepts: np.ndarray  # HxW uint8 concept id
    instances: np.ndarray  # HxW int32 instance id (0 = none); stuff regions get one id each
    objects: list[tuple[int, int]] = field(default_factory=list)  # (instance id, concept) in draw order


class _Canvas:
    """Draws each primitive on the image, the concept map and the instance map at once."""

    def __init__(self, size: int):
        self.size = size
        self.image = Image.new("RGB", (size, size))
        self.concepts = Image.new("L", (size, size))
        self.instances = Image.new("I", (size, size))
        self.draw_image = ImageDraw.Draw(self.image)
        self.draw_concepts = ImageDraw.Draw(self.concepts)
        self.draw_instances = ImageDraw.Draw(self.instances)
        self.objects: list[tuple[int, int]] = []

    def new_object(self, concept: int) -> int:
        instance = len(self.objects) + 1
        self.objects.append((instance, concept))
        return instance

    def shape(self, kind: str, xy, colour, concept: int, instance: int, **kw) -> None:
        getattr(self.draw_image, kind)(xy, fill=tuple(int(c) for c in colour), **kw)
        getattr(self.draw_concepts, kind)(xy, fill=concept, **kw)
        getattr(self.draw_instances, kind)(xy, fill=instance, **kw)


def _jitter(rng: np.random.Generator, colour, amount: float = 18.0):
    return np.clip(np.asarray(colour, float) + rng.normal(0, amount, 3), 0, 255)


def _texture(rng: np.random.Generator, size: int, base, amount: float, stripes: bool = False) -> np.ndarray:
    noise = rng.normal(0, amount, (size, size, 1))
    tex = np.asarray(base, float)[None, None, :] + noise
    if stripes:
        tex += (np.sin(np.arange(size) / 1.6)[None, :, None] * amount * 0.8)
    return np.clip(tex, 0, 255)


def _draw_person(c: _Canvas, rng, x: float, foot: float, h: float, concept: int) -> tuple[int, float]:
    inst = c.new_object(concept)
    skin = _jitter(rng, (215, 170, 135), 20)
    shirt = rng.integers(30, 230, 3)
    trousers = _jitter(rng, (50, 50, 90), 25)
    w = h * 0.28
    c.shape("rectangle", [x - w * 0.4, foot - h * 0.45, x - w * 0.05, foot], trousers, concept, inst)
    c.shape("rectangle", [x + w * 0.05, foot - h * 0.45, x + w * 0.4, foot], trousers, concept, inst)
    c.shape("rectangle", [x - w * 0.5, foot - h * 0.8, x + w * 0.5, foot - h * 0.42], shirt, concept, inst)
    c.shape("ellipse", [x - w * 0.3, foot - h, x + w * 0.3, foot - h * 0.78], skin, concept, inst)
    return inst, foot - h


def _draw_bicycle(c: _Canvas, rng, x: float, ground: float, s: float) -> None:
    inst = c.new_object(BICYCLE)
    frame = rng.integers(20, 235, 3)
    r = s * 0.22
    line = max(1, int(s * 0.06))
    for cx in (x - s * 0.35, x + s * 0.35):
        c.shape("ellipse", [cx - r, ground - 2 * r, cx + r, ground], (25, 25, 25), BICYCLE, inst, width=line)
    c.shape("line", [x - s * 0.35, ground - r, x, ground - r * 2.2, x + s * 0.35, ground - r], frame, BICYCLE,
            inst, width=line)


def _draw_car(c: _Canvas, rng, x: float, ground: float, s: float) -> None:
    inst = c.new_object(CAR)
    body = rng.integers(20, 235, 3)
    c.shape("rounded_rectangle", [x - s, ground - s * 0.55, x + s, ground - s * 0.15], body, CAR, inst,
            radius=max(1, int(s * 0.12)))
    c.shape("rounded_rectangle", [x - s * 0.55, ground - s * 0.9, x + s * 0.5, ground - s * 0.5],
            _jitter(rng, (150, 190, 220), 15), CAR, inst, radius=max(1, int(s * 0.1)))
    r = s * 0.2
    for cx in (x - s * 0.6, x + s * 0.6):
        c.shape("ellipse", [cx - r, ground - 2 * r, cx + r, ground], (20, 20, 20), CAR, inst)


def _draw_dog(c: _Canvas, rng, x: float, ground: float, s: float) -> None:
    inst = c.new_object(DOG)
    fur = _jitter(rng, (140, 95, 55), 30)
    c.shape("ellipse", [x - s * 0.5, ground - s * 0.65, x + s * 0.4, ground - s * 0.3], fur, DOG, inst)
    c.shape("ellipse", [x + s * 0.25, ground - s * 0.9, x + s * 0.6, ground - s * 0.55], fur, DOG, inst)
    for lx in (x - s * 0.4, x - s * 0.25, x + s * 0.15, x + s * 0.28):
        c.shape("rectangle", [lx, ground - s * 0.35, lx + s * 0.08, ground], fur, DOG, inst)
    c.shape("line", [x - s * 0.5, ground - s * 0.55, x - s * 0.75, ground - s * 0.8], fur, DOG, inst,
            width=max(1, int(s * 0.07)))


def _draw_tree(c: _Canvas, rng, x: float, ground: float, s: float) -> None:
    inst = c.new_object(TREE)
    c.shape("rectangle", [x - s * 0.08, ground - s * 0.7, x + s * 0.08, ground], _jitter(rng, (95, 65, 35), 12),
            TREE, inst)
    leaf = _jitter(rng, (40, 110, 40), 20)
    for _ in range(4):
        dx, dy = rng.normal(0, s * 0.15, 2)
        r = s * rng.uniform(0.28, 0.4)
        cy = ground - s * 0.9 + dy
        c.shape("ellipse", [x + dx - r, cy - r, x + dx + r, cy + r], _jitter(rng, leaf, 10), TREE, inst)


def _draw_building(c: _Canvas, rng, x0: float, x1: float, horizon: float, top: float) -> None:
    inst = c.new_object(BUILDING)
    wall = _jitter(rng, rng.choice([(150, 120, 100), (170, 170, 165), (200, 185, 150)]), 15)
    c.shape("rectangle", [x0, top, x1, horizon], wall, BUILDING, inst)
    step = max(4, int((x1 - x0) / 4))
    for wx in np.arange(x0 + step * 0.4, x1 - step * 0.4, step):
        for wy in np.arange(top + step * 0.4, horizon - step * 0.4, step):
            c.shape("rectangle", [wx, wy, wx + step * 0.45, wy + step * 0.5], (60, 70, 90), BUILDING, inst)


def render_scene(rng: np.random.Generator, size: int, domain: Domain) -> Scene:
    c = _Canvas(size)
    horizon = size * rng.uniform(0.35, 0.55)
    # Stuff: sky (gradient + clouds), grass (noisy texture), road (grey band with lane dashes).
    sky = c.new_object(SKY)
    top_c, bottom_c = _jitter(rng, (70, 130, 210), 15), _jitter(rng, (170, 200, 235), 10)
    for y in range(int(horizon) + 1):
        t = y / max(horizon, 1)
        c.shape("line", [0, y, size, y], top_c * (1 - t) + bottom_c * t, SKY, sky)
    for _ in range(rng.integers(0, 3)):
        cx, cy, r = rng.uniform(0, size), rng.uniform(0, horizon * 0.7), rng.uniform(4, size * 0.12)
        c.shape("ellipse", [cx - 2 * r, cy - r, cx + 2 * r, cy + r], _jitter(rng, (240, 240, 245), 6), SKY, sky)
    grass = c.new_object(GRASS)
    c.shape("rectangle", [0, horizon, size, size], (0, 0, 0), GRASS, grass)
    grass_mask = np.asarray(c.concepts) == GRASS
    img = np.asarray(c.image).copy()
    img[grass_mask] = _texture(rng, size, _jitter(rng, (70, 140, 50), 15), 22)[grass_mask]
    c.image.paste(Image.fromarray(img.astype(np.uint8)))
    road = c.new_object(ROAD)
    mid = size * rng.uniform(0.3, 0.7)
    c.shape("polygon", [(mid - size * 0.05, horizon), (mid + size * 0.05, horizon), (size * 1.2, size),
                        (-size * 0.2, size)], _jitter(rng, (105, 105, 110), 10), ROAD, road)
    for y in np.arange(horizon + 4, size, 10):
        w = 1 + (y - horizon) / size * 3
        c.draw_image.rectangle([mid - w / 2, y, mid + w / 2, y + 4], fill=(235, 235, 235))  # markings stay road
    # Things, back to front.
    for _ in range(rng.integers(0, 3)):
        x0 = rng.uniform(-size * 0.1, size * 0.8)
        _draw_building(c, rng, x0, x0 + size * rng.uniform(0.15, 0.35), horizon, horizon * rng.uniform(0.15, 0.6))
    for _ in range(rng.integers(0, 3)):
        _draw_tree(c, rng, rng.uniform(0, size), horizon + size * rng.uniform(0, 0.1), size * rng.uniform(0.2, 0.35))
    placements = [CAR] * int(rng.integers(0, 3)) + [PERSON] * int(rng.integers(0, 3))
    placements += [RIDER] * int(rng.integers(0, 2)) + [DOG] * int(rng.integers(0, 2))
    rng.shuffle(placements)
    for kind in placements:
        ground = rng.uniform(horizon + size * 0.12, size * 0.98)
        scale = size * (0.08 + 0.2 * (ground - horizon) / (size - horizon))
        x = rng.uniform(scale, size - scale)
        if kind == CAR:
            _draw_car(c, rng, x, ground, scale)
        elif kind == PERSON:
            _draw_person(c, rng, x, ground, scale * 2.2, PERSON)
        elif kind == RIDER:
            _draw_bicycle(c, rng, x, ground, scale * 1.6)
            _draw_person(c, rng, x, ground - scale * 0.55, scale * 1.8, RIDER)
        else:
            _draw_dog(c, rng, x, ground, scale * 1.2)
    image = _apply_domain(rng, np.asarray(c.image), domain)
    return Scene(image, np.asarray(c.concepts).copy(), np.asarray(c.instances).astype(np.int32), c.objects)


def _apply_domain(rng: np.random.Generator, image: np.ndarray, d: Domain) -> np.ndarray:
    x = image.astype(np.float32) / 255.0
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * d.saturation
    x = np.clip(x, 0, 1) ** d.gamma
    x = x * np.asarray(d.gain) + np.asarray(d.bias) / 255.0
    x = x * 255.0 + rng.normal(0, d.noise, x.shape)
    out = Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))
    if d.blur:
        out = out.filter(ImageFilter.GaussianBlur(d.blur))
    return np.asarray(out)
