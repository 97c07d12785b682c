"""Pydantic schemas for the label registry (labels.yaml) and one dataset's taxonomy YAML.

Only shape and per-field rules live here. Rules that need the registry and the whole file
(unknown labels, duplicate raw ids, declared counts) live in load.py, so every problem in a
file is reported at once with its location.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.shard_format import Supervision, ignore_value, label_dtype  # the shard format owns these rules

# Raw ids are what the annotation file holds: an integer pixel value / category id,
# or a string such as an OpenImages MID ("/m/04yx4").
RawId = int | str

LABEL_KEY_PATTERN = r"^[a-z0-9]+(_[a-z0-9]+)*$"


class Group(str, Enum):
    """Category groups, used to order and colour plots of the label space."""

    people = "people"
    animals = "animals"
    vehicles = "vehicles"
    street = "street"  # traffic signs and lights, poles, road markings, street furniture
    ground = "ground"  # road, sidewalk, floor, sand, terrain
    nature = "nature"  # sky, vegetation, water, mountains
    structures = "structures"  # buildings, walls, fences, bridges, architectural parts
    furniture = "furniture"
    household = "household"  # appliances, kitchenware, electronics, containers, fixtures
    food = "food"
    sports = "sports"  # sports gear, toys, musical instruments
    accessories = "accessories"  # clothing, bags, personal items
    other = "other"


class Role(str, Enum):
    train = "train"
    eval = "eval"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Label(_Strict):
    """One concept in the registry. Several datasets' classes may map to it."""

    name: str = Field(min_length=1, description="display name, used in 'An image of {name}.'")
    wikipedia: str = Field(min_length=1, description="English Wikipedia page title")
    group: Group
    description: str = Field(min_length=1, description="one or two encyclopedic sentences, our own words")

    @field_validator("name", "wikipedia", "description")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v.strip()


class LabelRegistry(_Strict):
    labels: dict[str, Label]

    @field_validator("labels")
    @classmethod
    def _keys_are_identifiers(cls, v: dict[str, Label]) -> dict[str, Label]:
        import re

        bad = [k for k in v if not re.match(LABEL_KEY_PATTERN, k)]
        if bad:
            raise ValueError(f"label keys must be lower_snake_case: {bad[:5]}")
        return v


class SplitSpec(_Strict):
    """Where one split lives, relative to the dataset root. Readers interpret these per format."""

    images: str = Field(description="glob or folder of images")
    annotations: str | None = Field(default=None, description="glob or folder of annotation files")
    index: str | None = Field(default=None, description="a JSON or CSV file that lists the annotations")


class ClassEntry(_Strict):
    """One class of a dataset, in contiguous-index order (its position in the list)."""

    name: str = Field(min_length=1, description="the class name as the dataset spells it")
    label: str = Field(min_length=1, description="key in the label registry")
    raw_id: RawId | None = None
    raw_ids: list[RawId] | None = None
    description: str | None = Field(default=None, description="overrides the registry/cache text")
    color: tuple[int, int, int] | None = Field(default=None, description="RGB, for colour-coded label PNGs")
    ignore: bool = Field(
        default=False,
        description="a class the dataset lists but that means nothing (e.g. Mapillary 'Unlabeled'): it keeps "
        "its index, and its pixels are written as the ignore value",
    )

    @model_validator(mode="after")
    def _one_way_to_give_ids(self) -> ClassEntry:
        if self.raw_id is not None and self.raw_ids is not None:
            raise ValueError("give exactly one of raw_id or raw_ids")
        # A colour-coded class is found by its colour: it needs no made-up integer id.
        if self.raw_id is None and self.raw_ids is None and self.color is None:
            raise ValueError("give raw_id (the class's value in the label files), raw_ids, or, for colour-coded "
                             "label PNGs (png_folder mode color), color: [r, g, b]")
        if self.raw_ids is not None and not self.raw_ids:
            raise ValueError("raw_ids must not be empty")
        return self

    @property
    def all_raw_ids(self) -> list[RawId]:
        return [self.raw_id] if self.raw_id is not None else list(self.raw_ids or [])


class DatasetTaxonomy(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str
    homepage: str
    format: str = Field(description="converter name, see `ssiw convert --help`")
    supervision: Supervision
    role: Role = Role.train
    declared_classes: int | None = Field(default=None, description="official class count, checked")
    splits: dict[str, SplitSpec]
    ignore_values: list[RawId] = Field(default_factory=list)
    format_options: dict[str, Any] = Field(default_factory=dict)
    classes: list[ClassEntry] = Field(min_length=1)
    notes: str | None = None

    # -- derived views ---------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def class_labels(self) -> list[str]:
        return [c.label for c in self.classes]

    @property
    def label_dtype(self) -> Literal["uint8", "uint16"]:
        """See pipeline.shard_format.label_dtype (uint8 up to 254 classes)."""
        return label_dtype(self.num_classes)

    @property
    def ignore_index(self) -> int:
        return ignore_value(self.num_classes)

    def raw_to_index(self) -> dict[RawId, int]:
        """Raw id -> contiguous class index. Ignored raw ids are absent (see ignore_values)."""
        mapping: dict[RawId, int] = {}
        for index, entry in enumerate(self.classes):
            for raw in entry.all_raw_ids:
                mapping[raw] = index
        return mapping

    def raw_to_target(self) -> dict[RawId, int]:
        """Raw id -> the value written to a label PNG: class index, or ignore_index for ignored
        raw values and classes marked `ignore`. A raw id absent here is unknown: an error."""
        mapping: dict[RawId, int] = {raw: self.ignore_index for raw in self.ignore_values}
        for index, entry in enumerate(self.classes):
            for raw in entry.all_raw_ids:
                mapping[raw] = self.ignore_index if entry.ignore else index
        return mapping
