"""Annotation formats a taxonomy YAML may name. Each has a reader in pipeline/convert/readers/.

Kept here (not imported from the readers) so validating YAML stays fast and free of image
libraries; a test checks that this list and the reader registry agree.
"""

KNOWN_FORMATS: dict[str, str] = {
    "ade20k": "ADE20K challenge PNGs (mode L, 0 = other) or full-ADE20K _seg.png (class = R/10*256+G)",
    "coco_panoptic": "COCO panoptic JSON + PNGs (segment id = R + 256*G + 256^2*B)",
    "mapillary": "Mapillary Vistas v1.2 / v2.0 palette PNGs (palette index is the class)",
    "cityscapes": "Cityscapes *_gtFine_labelIds.png",
    "bdd100k": "BDD100K semantic masks (train ids in an L PNG)",
    "idd": "IDD level3 id PNGs, or _polygons.json rasterised with PIL",
    "sunrgbd": "SUN RGB-D 37-class label PNGs",
    "openimages_v6": "OpenImages V6 segmentation CSV + per-object binary mask PNGs (noisy)",
    "objects365": "Objects365 COCO-format JSON, boxes only",
    "png_folder": "generic index-valued L/P PNGs, or colour-coded RGB with a colour per class",
    "coco_instances": "generic COCO instances JSON (RLE or polygons via pycocotools)",
}
