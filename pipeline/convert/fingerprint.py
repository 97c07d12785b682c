"""What, besides the input files, decides a shard's bytes, and why a finished shard was redone.

A shard's fingerprint (plan.py) hashes its items plus these inputs: the taxonomy's mapping (the
parts of the YAML a reader or the encoder reads), the reader's format and FORMAT VERSION
(pipeline/taxonomy/formats.py), and the job's options. Each shard's part records them, so a re-run
can say which one changed. Class names, registry labels and descriptions are left out on purpose:
they never reach a shard (the label table is built from them separately), so editing them keeps the
shards.
"""

from __future__ import annotations

import hashlib
import json

from pipeline.taxonomy.schema import DatasetTaxonomy

# Why a finished shard is redone, in the words the summary prints.
TAXONOMY_CHANGED = "taxonomy mapping changed (class order, raw ids, colours, ignores or format options)"
READER_CHANGED = "reader format version changed"
OPTIONS_CHANGED = "convert options changed"
SUBSET_CHANGED = "subset changed (max samples, fraction or seed)"
INPUT_CHANGED = "input files or shard size changed"
OLDER_CONVERT = "converted by an older ssiw that recorded no inputs"
DAMAGED = "shard file missing or damaged"


def taxonomy_mapping(tax: DatasetTaxonomy) -> dict:
    """Every field of a taxonomy that changes the label or record a shard holds."""
    return {
        "supervision": tax.supervision.value,
        "ignore_values": list(tax.ignore_values),
        "format_options": tax.format_options,
        # By position: the index of a class is its place in this list.
        "classes": [
            {"raw_ids": c.all_raw_ids, "color": list(c.color) if c.color else None, "ignore": c.ignore}
            for c in tax.classes
        ],
    }


def _digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def convert_inputs(tax: DatasetTaxonomy, reader: object, options_tag: str, subset_tag: str | None = None) -> dict[str, str]:
    """The non-file inputs of every shard of a job, as recorded in each shard's part. A subset
    (pipeline/convert/subset.py) is recorded only when there is one, so shards of a whole split keep
    the fingerprints they had before subsets existed."""
    # A registry Format has a name and a version; the tests' FunctionReaders have neither.
    reader_id = f"{getattr(reader, 'name', 'custom')} v{getattr(reader, 'version', 0)}"
    inputs = {"taxonomy": _digest(taxonomy_mapping(tax)), "reader": reader_id, "options": options_tag}
    if subset_tag is not None:
        inputs["subset"] = subset_tag
    return inputs


def fingerprint_options(inputs: dict[str, str]) -> str:
    """The inputs as the one string the planner hashes with each shard's items."""
    return json.dumps(inputs, sort_keys=True)


def redo_reason(part: dict | None, fingerprint: str, inputs: dict[str, str]) -> str | None:
    """Why a shard that is not complete gets converted again; None when it was never finished."""
    if part is None:
        return None
    if part.get("fingerprint") == fingerprint:
        return DAMAGED  # the part matches, so its tar is what is wrong
    old = part.get("inputs")
    if not isinstance(old, dict):
        return OLDER_CONVERT
    if old.get("taxonomy") != inputs["taxonomy"]:
        return TAXONOMY_CHANGED
    if old.get("reader") != inputs["reader"]:
        return f"{READER_CHANGED} ({old.get('reader')} -> {inputs['reader']})"
    if old.get("options") != inputs["options"]:
        return OPTIONS_CHANGED
    if old.get("subset") != inputs.get("subset"):
        return SUBSET_CHANGED
    return INPUT_CHANGED
