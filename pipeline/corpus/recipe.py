"""A corpus recipe: the whole merged training corpus in one YAML, validated like the taxonomies.

It names the datasets (each a taxonomy `name`) with their roots and splits, an optional seeded cap on
the samples converted, the text encoder and table modes, whether box data gets CLIP crop embeddings,
the shard options and the output location (a folder or s3://). `ssiw corpus check` compares what is on
disk with each dataset's `release` facts (official image counts and the folders or archives a release
comes in, cited); `ssiw corpus build` runs describe, embed and convert for all of it.

Paths in a recipe are relative to the current directory, like every CLI path and the training config;
`--data-root`, `--out` and `--cache` on the command line override the recipe's. A dataset without
`root` is found at `<data_root>/<dataset name>`. Shipped recipes: taxonomies/corpora/.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import BadInput, NotFound
from pipeline.names import name_problem, relative_problem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Release(_Strict):
    """Facts about a dataset's official release, for `ssiw corpus check`; cited in `source`."""

    source: str = Field(min_length=1, description="where the counts come from: the dataset's paper or site")
    images: dict[str, int] = Field(
        default_factory=dict, description="split -> official number of images in that split")
    parts: dict[str, list[str]] = Field(
        default_factory=dict,
        description="split -> the folders or archives the release is downloaded as, relative to the dataset "
        "root; braces expand ('train/patch{0..50}' is 51 folders) and each must exist and not be empty "
        "(a glob such as 'train-masks/{0..9}*.png' must match at least one file)")

    @field_validator("images")
    @classmethod
    def _positive(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {k: n for k, n in v.items() if n < 1}
        if bad:
            raise ValueError(f"image counts must be positive: {bad}")
        return v

    @field_validator("parts")
    @classmethod
    def _parts_stay_under_the_root(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        from braceexpand import braceexpand

        for split, patterns in v.items():
            for pattern in patterns:
                for part in braceexpand(pattern):
                    problem = relative_problem(part)
                    if problem:
                        raise ValueError(f"parts.{split}: {problem}")
        return v


class DatasetRecipe(_Strict):
    name: str = Field(description="the dataset's taxonomy name")
    root: str | None = Field(
        default=None, description="the dataset's root folder as downloaded; relative paths are under data_root "
        "(default: <data_root>/<name>)")
    splits: list[str] | None = Field(default=None, min_length=1, description="default: every split of the taxonomy")
    max_samples: int | None = Field(
        default=None, ge=1, description="convert a seeded subset of exactly this many samples of each split "
        "(all of a smaller one; pipeline/convert/subset.py)")
    fraction: float | None = Field(default=None, gt=0, le=1, description="or: this share of each split's samples, rounded to "
        "the nearest sample")
    seed: int = Field(default=0, description="which subset max_samples / fraction keep")
    release: Release | None = None

    @field_validator("name")
    @classmethod
    def _name_is_a_path_name(cls, v: str) -> str:
        problem = name_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("splits")
    @classmethod
    def _splits_are_path_names(cls, v: list[str] | None) -> list[str] | None:
        for split in v or []:
            problem = name_problem(split)
            if problem:
                raise ValueError(problem)
        if v is not None and len(set(v)) != len(v):
            raise ValueError(f"a split is listed twice: {v}")
        return v

    @model_validator(mode="after")
    def _one_cap(self) -> DatasetRecipe:
        if self.max_samples is not None and self.fraction is not None:
            raise ValueError(f"{self.name}: give max_samples or fraction, not both")
        return self

    @property
    def capped(self) -> bool:
        return self.max_samples is not None or self.fraction is not None


class EmbedRecipe(_Strict):
    encoder: str = Field(default="minilm", description="as `ssiw embed --encoder`")
    modes: list[Literal["sentence", "word"]] = Field(default_factory=lambda: ["sentence"], min_length=1)


class ConvertRecipe(_Strict):
    shard_size: str = Field(default="1GB", description="as `ssiw convert --shard-size`")
    shard_samples: int = Field(default=20_000, ge=1, description="as `ssiw convert --shard-samples`")
    max_quarantined: float = Field(default=0.1, ge=0, le=1, description="as `ssiw convert --max-quarantined`")
    box_embeddings: str | None = Field(
        default=None, description="box data: also store CLIP crop embeddings, open_clip:MODEL:PRETRAINED "
        "(the paper's L_WD targets)")


class CorpusRecipe(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str | None = None
    data_root: str | None = Field(default=None, description="folder holding every dataset's root folder")
    out: str = Field(description="shard folder or s3://bucket/prefix; corpus.json and the report go there too")
    cache: str = Field(default="cache", description="description cache and embedding tables")
    taxonomies: list[str] = Field(
        default_factory=list, description="taxonomy folders layered over the shipped set, later ones win")
    offline: bool = Field(default=False, description="describe without the network: registry descriptions only")
    embed: EmbedRecipe = Field(default_factory=EmbedRecipe)
    convert: ConvertRecipe = Field(default_factory=ConvertRecipe)
    datasets: list[DatasetRecipe] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> CorpusRecipe:
        names = [d.name for d in self.datasets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"datasets listed twice: {twice}")
        return self

    def dataset_root(self, entry: DatasetRecipe) -> Path:
        """Where `entry`'s files are: its `root` (under data_root when relative), else <data_root>/<name>."""
        if entry.root is not None and Path(entry.root).is_absolute():
            return Path(entry.root)
        if self.data_root is None:
            if entry.root is None:
                raise BadInput(f"{entry.name}: no root, and the recipe has no data_root (give one, or --data-root)")
            return Path(entry.root)
        return Path(self.data_root) / (entry.root if entry.root is not None else entry.name)

    def with_overrides(self, *, data_root: str | None = None, out: str | None = None,
                       cache: str | None = None, taxonomies: list[str] | None = None) -> CorpusRecipe:
        """The recipe with the command line's locations in place of its own (taxonomy folders: the
        whole list)."""
        given = {"data_root": data_root, "out": out, "cache": cache, "taxonomies": taxonomies}
        return self.model_copy(update={k: v for k, v in given.items() if v is not None})


def dataset_hash(recipe: CorpusRecipe, entry: DatasetRecipe) -> str:
    """What decides one dataset's shards besides its files and taxonomy: its entry (splits, cap, seed)
    and the recipe's convert options. Locations and release facts are left out: moving the data or
    correcting a count redoes nothing."""
    data = {"entry": entry.model_dump(exclude={"root", "release"}), "convert": recipe.convert.model_dump()}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def recipe_hash(recipe: CorpusRecipe) -> str:
    """The whole validated recipe, canonical JSON, hashed: written into corpus.json."""
    return hashlib.sha256(json.dumps(recipe.model_dump(), sort_keys=True).encode()).hexdigest()[:16]


def find_recipe(recipe: str | Path) -> Path:
    """A path as given, else a shipped recipe of that name (`ssiw-paper`); load_recipe names a path that
    is neither."""
    from pipeline.paths import shipped_recipe_dir

    given = Path(recipe)
    shipped = shipped_recipe_dir() / f"{recipe}.yaml"
    if not given.is_file() and "/" not in str(recipe) and shipped.is_file():
        return shipped
    return given


def load_recipe(path: str | Path) -> CorpusRecipe:
    """Read and validate a recipe YAML (safe loader, duplicate keys refused); errors name the file and
    each bad field."""
    from pipeline.taxonomy.yaml_io import DuplicateKeyError, read_yaml

    p = Path(path)
    if not p.is_file():
        raise NotFound(f"{p}: recipe file not found (shipped recipes: taxonomies/corpora/)")
    try:
        raw = read_yaml(p)
    except DuplicateKeyError as e:
        raise BadInput(f"{p}: {e}") from e
    except Exception as e:  # yaml.YAMLError and friends: the file is not YAML
        raise BadInput(f"{p}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise BadInput(f"{p}: expected a mapping of recipe fields")
    try:
        return CorpusRecipe.model_validate(raw)
    except ValidationError as e:
        lines = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise BadInput(f"{p}: {lines}") from e
