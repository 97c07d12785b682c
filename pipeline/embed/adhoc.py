"""Open-vocabulary labels given on the command line: `--label "deer: A deer is a hoofed mammal."`.

`segment` and `eval` import this to describe classes that are in no taxonomy: the text becomes
"An image of deer. A deer is a hoofed mammal." and is encoded with the same encoder as the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.describe.sentence import label_text
from pipeline.errors import BadInput

if TYPE_CHECKING:
    import numpy as np

    from pipeline.embed.encoders import TextEncoder


@dataclass(frozen=True)
class AdhocLabel:
    name: str
    description: str | None = None

    def text(self, mode: str = "sentence") -> str:
        return self.name if mode == "word" else label_text(self.name, self.description)


def parse_label(spec: str) -> AdhocLabel:
    """ "name: description" (or just "name") -> AdhocLabel. The first colon separates the two."""
    name, sep, description = spec.partition(":")
    name, description = name.strip(), description.strip()
    if not name:
        raise BadInput(f"--label {spec!r}: give a name before the colon, as in 'deer: A deer is ...'")
    if sep and not description:
        raise BadInput(f"--label {spec!r}: the description after the colon is empty")
    return AdhocLabel(name, description or None)


def parse_labels(specs: Iterable[str]) -> list[AdhocLabel]:
    labels = [parse_label(s) for s in specs]
    seen: set[str] = set()
    for label in labels:
        if label.name in seen:
            raise BadInput(f"--label {label.name!r} is given twice")
        seen.add(label.name)
    return labels


def encode_labels(
    labels: Iterable[AdhocLabel | str],
    encoder: str | TextEncoder,
    mode: str = "sentence",
    device: str | None = None,
) -> np.ndarray:
    """K x D unit-length vectors for the labels, encoded like the table (pass `table.encoder`)."""
    from pipeline.embed.encoders import get_encoder

    items = [parse_label(x) if isinstance(x, str) else x for x in labels]
    enc = get_encoder(encoder, device) if isinstance(encoder, str) else encoder
    return enc.encode([label.text(mode) for label in items])
