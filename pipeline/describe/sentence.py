"""Turning a Wikipedia lead section into one clean sentence, and a sentence into a label text.

A lead starts with the most useful sentence for a text encoder ("A lizard is a reptile ..."), but
it also carries clutter: Latin names and pronunciations in brackets, IPA between slashes, the
word "listen" left over from audio links, footnote markers. We remove those, then cut at the
first sentence end that is not an abbreviation or an initial.
"""

from __future__ import annotations

import re

# Words after which a full stop does not end a sentence.
_ABBREVIATIONS = {
    "e.g", "i.e", "etc", "c", "ca", "approx", "incl", "esp", "vs", "cf", "st", "mt", "mr", "mrs", "ms",
    "dr", "prof", "jr", "sr", "no", "nos", "fig", "vol", "u.s", "u.k", "sp", "spp", "var", "subsp",
}

_FOOTNOTE = re.compile(r"\[(?:\d+|[a-z]|note \d+|citation needed)\]", re.IGNORECASE)
# /ˈlɪzərd/, with the "listen" / ⓘ left behind by an audio link.
_IPA = re.compile(r"/[^/\s][^/]*?/(?:\s*(?:listen\b|ⓘ))?", re.IGNORECASE)
_AUDIO_MARK = re.compile(r"\s*ⓘ")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_DOUBLE_PUNCT = re.compile(r"([,;:])\s*([,;:.])")
_SPACES = re.compile(r"\s+")


def strip_parentheticals(text: str) -> str:
    """Remove (...) and [...] groups, nested ones included."""
    out: list[str] = []
    depth = 0
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _tidy(text: str) -> str:
    text = _SPACES.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _DOUBLE_PUNCT.sub(r"\2", text)
    text = re.sub(r"^[,;:\s]+", "", text)
    return text.strip()


def first_sentence(text: str) -> str:
    """The text up to the first full stop (or ! ?) that ends a sentence."""
    for match in re.finditer(r"[.!?](?=\s+[\"'(A-Z0-9]|\s*$)", text):
        end = match.start()
        word = re.search(r"([A-Za-z.]+)$", text[:end])
        token = word.group(1).lower() if word else ""
        # "J. Smith", "U.S. Army", "c. 1900": an initial or a known abbreviation, keep going.
        if match.group() == "." and (token in _ABBREVIATIONS or re.fullmatch(r"[a-z]", token)):
            continue
        return text[: end + 1].strip()
    return text.strip()


def clean_lead(lead: str) -> str:
    """The first sentence of a Wikipedia lead, without parentheticals or pronunciation clutter.

    Returns "" when nothing usable is left (an empty lead)."""
    paragraph = next((p for p in lead.split("\n") if p.strip()), "")
    text = _FOOTNOTE.sub("", paragraph)
    text = _AUDIO_MARK.sub("", text)
    text = strip_parentheticals(text)
    text = _IPA.sub(" ", text)
    text = _tidy(text)
    sentence = first_sentence(text)
    if sentence and sentence[-1] not in ".!?":
        sentence += "."
    return sentence


def label_text(name: str, description: str | None) -> str:
    """The sentence a label is embedded as: "An image of {name}. {description}"."""
    head = f"An image of {name.strip()}."
    description = (description or "").strip()
    return f"{head} {description}" if description else head


def looks_like_disambiguation(lead: str) -> bool:
    """Disambiguation pages open with "X may refer to:" (checked in addition to their category)."""
    return bool(re.search(r"\bmay (?:also )?refer to\b", lead[:300], re.IGNORECASE))
