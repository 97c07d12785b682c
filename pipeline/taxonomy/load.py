"""Loading and validating a taxonomy set: the label registry plus one YAML per dataset.

A taxonomy folder holds `labels.yaml` (the registry; extra `labels-*.yaml` files beside it extend
it, for a user's own concepts) and one `<dataset>.yaml` per dataset. Every problem is collected
as a Problem(file, where, message) so `ssiw taxonomy validate` can report all of them at once.

A set is read from folders in layers: the shipped folder, then each folder of $SSIW_TAXONOMIES (a
path list), then each --taxonomies folder; later folders win. A user's folder therefore holds only its
own dataset YAMLs and a labels.yaml with only its new labels (it may have none): a dataset YAML of the
same file name replaces the earlier one; a label defined again differently is an error naming both
files. A folder whose labels.yaml says `standalone: true` is a whole set: the folders before it are
not read (the demo corpus and the tests use such folders).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from pipeline.errors import BadInput, UnknownName
from pipeline.names import name_problem, relative_problem
from pipeline.taxonomy.formats import FORMAT_INFO as FORMATS
from pipeline.taxonomy.formats import option_problems
from pipeline.taxonomy.schema import DatasetTaxonomy, Label, LabelRegistry
from pipeline.taxonomy.yaml_io import read_yaml

REGISTRY_FILE = "labels.yaml"
REGISTRY_EXTRA_GLOB = "labels-*.yaml"
STANDALONE_KEY = "standalone"  # in labels.yaml: this folder is a whole taxonomy set, not a layer


@dataclass(frozen=True)
class Problem:
    file: Path
    where: str  # e.g. "classes[3] 'wall'.label", or "" for the whole file
    message: str

    def __str__(self) -> str:
        where = f": {self.where}" if self.where else ""
        return f"{self.file}{where}: {self.message}"


class TaxonomyError(BadInput):
    """Raised when a taxonomy folder or file has problems; lists every one."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} taxonomy problem(s):\n{lines}")


def _pydantic_problems(path: Path, err: ValidationError, raw: object) -> list[Problem]:
    problems = []
    for e in err.errors():
        loc = list(e["loc"])
        where = ".".join(str(p) for p in loc)
        # Name the class by its dataset name, not only its position.
        if len(loc) >= 2 and loc[0] == "classes" and isinstance(loc[1], int) and isinstance(raw, dict):
            classes = raw.get("classes") or []
            name = classes[loc[1]].get("name") if loc[1] < len(classes) and isinstance(classes[loc[1]], dict) else None
            rest = ".".join(str(p) for p in loc[2:])
            where = f"classes[{loc[1]}]" + (f" {name!r}" if name else "") + (f".{rest}" if rest else "")
        if len(loc) >= 2 and loc[0] == "labels":
            where = f"label {loc[1]!r}" + ("." + ".".join(str(p) for p in loc[2:]) if len(loc) > 2 else "")
        message = e["msg"]
        if "raw_id" in loc and isinstance(e.get("input"), list):  # raw_id: [r, g, b]: a colour in the wrong key
            where = where.split(".raw_id")[0] + ".raw_id"
            message = "a list is not a raw id; a class's colour goes in `color: [r, g, b]` (png_folder mode color)"
        problem = Problem(path, where, message)
        if problem not in problems:  # one line, not one per member of the int | str union
            problems.append(problem)
    return problems


def _read(path: Path) -> tuple[object | None, list[Problem]]:
    try:
        return read_yaml(path), []
    except FileNotFoundError:
        return None, [Problem(path, "", "file not found")]
    except yaml.YAMLError as e:
        return None, [Problem(path, "", f"not valid YAML: {e}")]


def load_registry_files(paths: list[Path]) -> tuple[LabelRegistry | None, list[Problem]]:
    """Read one or more registry files into one registry; a key defined twice is a problem."""
    merged: dict[str, Label] = {}
    origin: dict[str, Path] = {}
    problems: list[Problem] = []
    for path in paths:
        raw, read_problems = _read(path)
        problems += read_problems
        if raw is None:
            continue
        if not isinstance(raw, dict) or not isinstance(raw.get("labels"), dict):
            problems.append(Problem(path, "", "expected a mapping with a 'labels:' mapping inside"))
            continue
        raw = {k: v for k, v in raw.items() if k != STANDALONE_KEY}
        try:
            reg = LabelRegistry.model_validate(raw)
        except ValidationError as e:
            problems += _pydantic_problems(path, e, raw)
            continue
        for key, label in reg.labels.items():
            if key in merged and not (merged[key] == label and origin[key].parent != path.parent):
                problems.append(Problem(path, f"label {key!r}", f"already defined in {origin[key]}"))
                continue
            merged[key] = label
            origin[key] = path
    if problems:
        return None, problems
    return LabelRegistry(labels=merged), []


def load_dataset_file(path: Path) -> tuple[DatasetTaxonomy | None, list[Problem]]:
    """Parse one dataset YAML and check the rules that need only the file itself."""
    raw, problems = _read(path)
    if raw is None:
        return None, problems
    if not isinstance(raw, dict):
        return None, [Problem(path, "", "expected a mapping at the top level")]
    try:
        tax = DatasetTaxonomy.model_validate(raw)
    except ValidationError as e:
        return None, _pydantic_problems(path, e, raw)
    return tax, check_dataset(path, tax)


def check_dataset(path: Path, tax: DatasetTaxonomy) -> list[Problem]:
    """Rules across the whole file: ids, names, counts, format."""
    problems: list[Problem] = []
    if path.stem != tax.name:
        problems.append(Problem(path, "name", f"{tax.name!r} differs from the file name {path.stem!r}"))
    if tax.format not in FORMATS:
        problems.append(Problem(path, "format", f"unknown format {tax.format!r}; known: {', '.join(FORMATS)}"))
    elif tax.supervision.value not in FORMATS[tax.format].supervision:
        if tax.supervision.value == "box":
            message = f"'box' supervision needs a box format, not {tax.format!r}"
        else:
            kinds = ", ".join(sorted(FORMATS[tax.format].supervision))
            message = f"the {tax.format!r} reader gives only {kinds} supervision"
        problems.append(Problem(path, "supervision", message))
    problems += [Problem(path, where, message) for where, message in option_problems(tax)]
    if tax.format != "png_folder":  # png_folder's own check says what its mode needs
        for index, entry in enumerate(tax.classes):
            if not entry.all_raw_ids:
                problems.append(Problem(path, f"classes[{index}] {entry.name!r}",
                                        f"the {tax.format!r} reader finds a class by its raw id: give raw_id or raw_ids"))
    if tax.declared_classes is not None and tax.declared_classes != tax.num_classes:
        problems.append(
            Problem(
                path,
                "classes",
                f"{tax.num_classes} classes listed but declared_classes is {tax.declared_classes}",
            )
        )
    first_seen: dict[object, str] = {}
    for index, entry in enumerate(tax.classes):
        where = f"classes[{index}] {entry.name!r}"
        for raw in entry.all_raw_ids:
            if raw in first_seen:
                problems.append(Problem(path, where, f"duplicate raw id {raw!r} (also {first_seen[raw]})"))
            else:
                first_seen[raw] = where
            if raw in tax.ignore_values:
                problems.append(Problem(path, where, f"raw id {raw!r} is both a class and in ignore_values"))
    for name, count in Counter(tax.class_names).items():
        if count > 1:
            problems.append(Problem(path, "classes", f"class name {name!r} appears {count} times"))
    return problems + check_path_names(path, tax) + check_raw_id_types(path, tax)


# format_options that name a file relative to the dataset root.
PATH_OPTIONS = ("scene_list", "map_from_ade")


def check_path_names(path: Path, tax: DatasetTaxonomy) -> list[Problem]:
    """Names that become paths stay where they belong (pipeline/names.py): a split name is one file
    name component under --out; a split's images/annotations/index and a path option stay under --root."""
    problems = []
    for split, spec in tax.splits.items():
        problem = name_problem(split)
        if problem:
            problems.append(Problem(path, f"splits.{split}", f"split name {problem}"))
        for what in ("images", "annotations", "index"):
            value = getattr(spec, what)
            problem = relative_problem(value) if value is not None else None
            if problem:
                problems.append(Problem(path, f"splits.{split}.{what}", problem))
    for option in PATH_OPTIONS:
        value = tax.format_options.get(option)
        problem = relative_problem(str(value)) if value is not None else None
        if problem:
            problems.append(Problem(path, f"format_options.{option}", problem))
    return problems


# The one format whose raw ids are text (OpenImages MIDs such as "/m/04yx4"); every other reader
# reads integers (pixel values, category ids).
TEXT_RAW_ID_FORMATS = frozenset({"openimages_v6"})


def check_raw_id_types(path: Path, tax: DatasetTaxonomy) -> list[Problem]:
    """Raw ids the format can hold: integers (a class's id also not negative: no pixel value or
    category id is) or, for a text-id format, strings. Anything else never matches, or breaks the
    label table in the middle of a convert."""
    text = tax.format in TEXT_RAW_ID_FORMATS
    want = "a string (a MID)" if text else "an integer"

    def wrong(raw: object) -> bool:
        return not isinstance(raw, str) if text else not isinstance(raw, int) or isinstance(raw, bool)

    problems = []
    for n, raw in enumerate(tax.ignore_values):
        if wrong(raw):
            problems.append(Problem(path, f"ignore_values[{n}]", f"{raw!r} is not {want}, the {tax.format!r} "
                                                                f"reader's raw values"))
    for index, entry in enumerate(tax.classes):
        where = f"classes[{index}] {entry.name!r}"
        for raw in entry.all_raw_ids:
            if wrong(raw):
                problems.append(Problem(path, where, f"raw id {raw!r} is not {want}, the {tax.format!r} "
                                                     f"reader's raw values"))
            elif not text and raw < 0:
                problems.append(Problem(path, where, f"raw id {raw} is negative: no pixel value or "
                                                     f"category id is"))
    return problems


def check_against_registry(path: Path, tax: DatasetTaxonomy, registry: LabelRegistry) -> list[Problem]:
    problems = []
    for index, entry in enumerate(tax.classes):
        where = f"classes[{index}] {entry.name!r}"
        if entry.label not in registry.labels:
            problems.append(Problem(path, where + ".label", f"unknown label {entry.label!r}: add it to labels.yaml"))
        if entry.description is not None and not entry.description.strip():
            problems.append(Problem(path, where + ".description", "description override is empty"))
    return problems


@dataclass
class TaxonomySet:
    """A validated taxonomy set: the registry and every dataset by name, from one or more folders."""

    folder: Path  # the last (winning) folder
    registry: LabelRegistry
    datasets: dict[str, DatasetTaxonomy] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    folders: list[Path] = field(default_factory=list)  # every layer, the shipped one first

    def dataset(self, name: str) -> DatasetTaxonomy:
        if name not in self.datasets:
            import difflib

            known = ", ".join(sorted(self.datasets))
            close = difflib.get_close_matches(name, list(self.datasets), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            where = ", ".join(str(f) for f in self.folders or [self.folder])
            raise UnknownName(f"no taxonomy named {name!r} in {where}{hint} (known: {known})")
        return self.datasets[name]

    def label_usage(self) -> dict[str, list[str]]:
        """Label key -> names of the datasets that use it."""
        usage: dict[str, list[str]] = {k: [] for k in self.registry.labels}
        for name, tax in sorted(self.datasets.items()):
            for key in dict.fromkeys(tax.class_labels):
                usage.setdefault(key, []).append(name)
        return usage


def registry_paths(folder: Path) -> list[Path]:
    return [folder / REGISTRY_FILE] + sorted(folder.glob(REGISTRY_EXTRA_GLOB))


def dataset_paths(folder: Path) -> list[Path]:
    skip = {p.name for p in registry_paths(folder)}
    return sorted(p for p in folder.glob("*.yaml") if p.name not in skip)


def _is_standalone(folder: Path) -> bool:
    try:
        raw = read_yaml(folder / REGISTRY_FILE)
    except (OSError, yaml.YAMLError):
        return False  # reported when the registry is read
    return isinstance(raw, dict) and raw.get(STANDALONE_KEY) is True


def taxonomy_folders(given: Path | str | list | tuple | None = None) -> list[Path]:
    """The layers a taxonomy set is read from, in order: shipped, $SSIW_TAXONOMIES, then `given`
    (one folder or several); a folder listed twice counts once; a standalone folder drops the ones
    before it."""
    from pipeline.paths import default_taxonomy_dir, env_taxonomy_dirs

    given = [] if given is None else [given] if isinstance(given, (str, Path)) else list(given)
    layers: list[Path] = []
    for folder in [default_taxonomy_dir(), *env_taxonomy_dirs(), *map(Path, given)]:
        if any(folder.resolve() == f.resolve() for f in layers):
            continue
        layers = [folder] if layers and _is_standalone(folder) else [*layers, folder]
    return layers


def _layered_files(folders: list[Path]) -> tuple[list[Path], list[Path], list[Problem]]:
    """Registry files of every layer, and the dataset files: a later folder's YAML replaces an
    earlier one of the same file name."""
    registries: list[Path] = []
    datasets: dict[str, Path] = {}
    problems = []
    for n, folder in enumerate(folders):
        if not folder.is_dir():
            problems.append(Problem(folder, "", "taxonomy folder not found"))
            continue
        # The base needs its registry; a layer may add no labels at all.
        registries += [p for p in registry_paths(folder) if n == 0 or p.exists()]
        datasets.update({p.name: p for p in dataset_paths(folder)})
    return registries, sorted(datasets.values(), key=lambda p: p.name), problems


def validate_folder(
    folder: Path | list | tuple, only: list[Path] | None = None
) -> tuple[TaxonomySet | None, list[Problem]]:
    """Validate the registry and the dataset files (all of them, or `only`) of the set whose last
    layer(s) are `folder` (see taxonomy_folders)."""
    folders = taxonomy_folders(folder)
    registry_files, dataset_files, problems = _layered_files(folders)
    registry, registry_problems = load_registry_files(registry_files)
    problems += registry_problems
    taxset = TaxonomySet(folder=folders[-1], registry=registry or LabelRegistry(labels={}), folders=folders)
    for path in only if only is not None else dataset_files:
        tax, file_problems = load_dataset_file(Path(path))
        problems += file_problems
        if tax is None:
            continue
        if registry is not None:
            problems += check_against_registry(Path(path), tax, registry)
        if tax.name in taxset.datasets:
            problems.append(Problem(Path(path), "name", f"dataset {tax.name!r} also in {taxset.files[tax.name]}"))
        taxset.datasets[tax.name] = tax
        taxset.files[tax.name] = Path(path)
    return (taxset if not problems else None), problems


def load_taxonomy_set(folder: Path | str | list | tuple | None = None) -> TaxonomySet:
    """Load and validate a taxonomy set: the shipped folder with $SSIW_TAXONOMIES and `folder` (one
    or several) layered over it; raise TaxonomyError listing every problem."""
    taxset, problems = validate_folder(folder or [])
    if problems:
        raise TaxonomyError(problems)
    assert taxset is not None
    return taxset
