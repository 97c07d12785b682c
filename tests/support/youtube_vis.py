"""YouTube-VIS fixtures: the 2019 release's 40 categories and a shortcut to its layout writer
(pipeline/convert/layouts/youtube_vis.py) for videos given as masks per track."""

from __future__ import annotations

from pathlib import Path

from pipeline.convert.layouts.youtube_vis import Track, Video
from pipeline.convert.readers import FORMATS
from support.generated import jpeg

__all__ = ["CATEGORIES_2019", "Track", "write_youtube_vis"]

# YouTube-VIS 2019's 40 categories (id: name), as its instances JSON lists them.
CATEGORIES_2019 = {
    1: "person", 2: "giant_panda", 3: "lizard", 4: "parrot", 5: "skateboard", 6: "sedan", 7: "ape", 8: "dog",
    9: "snake", 10: "monkey", 11: "hand", 12: "rabbit", 13: "duck", 14: "cat", 15: "cow", 16: "fish", 17: "train",
    18: "horse", 19: "turtle", 20: "bear", 21: "motorbike", 22: "giraffe", 23: "leopard", 24: "fox", 25: "deer",
    26: "owl", 27: "surfboard", 28: "airplane", 29: "truck", 30: "zebra", 31: "tiger", 32: "elephant",
    33: "snowboard", 34: "boat", 35: "shark", 36: "mouse", 37: "frog", 38: "eagle", 39: "earless_seal",
    40: "tennis_racket",
}


def write_youtube_vis(tax, root: Path, split: str, videos: dict[str, list[Track]], size=(12, 16),
                      compressed: bool = True) -> dict[str, Path]:
    """Each video's frames (small JPEGs) and its tracks through the layout writer, with all 40
    categories in the JSON; returns frame key -> JPEG path."""
    height, width = size
    vids = [Video(name, [jpeg(width, height, 17 * v + f) for f in range(len(tracks[0].masks))], width, height, tracks)
            for v, (name, tracks) in enumerate(sorted(videos.items()))]
    categories = [{"id": i, "name": n, "supercategory": "object"} for i, n in CATEGORIES_2019.items()]
    return FORMATS["youtube_vis"].write_layout(tax, Path(root), split, vids, categories=categories,
                                               compressed=compressed)
