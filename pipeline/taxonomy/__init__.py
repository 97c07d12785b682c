"""Taxonomies: the label registry and one YAML per dataset."""

from pipeline.taxonomy.load import (
    Problem,
    TaxonomyError,
    TaxonomySet,
    load_taxonomy_set,
    validate_folder,
)
from pipeline.taxonomy.schema import ClassEntry, DatasetTaxonomy, Group, Label, LabelRegistry, Supervision

__all__ = [
    "ClassEntry",
    "DatasetTaxonomy",
    "Group",
    "Label",
    "LabelRegistry",
    "Problem",
    "Supervision",
    "TaxonomyError",
    "TaxonomySet",
    "load_taxonomy_set",
    "validate_folder",
]
