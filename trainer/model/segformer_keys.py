"""Parameter names of SegFormer in its three spellings, and translation between them.

- "authors": the original MiT / SegFormer code (NVlabs, mmseg) as used by the SSIW release:
  `encoder.patch_embed1.proj`, `encoder.block3.12.attn.kv`, `encoder.norm4`,
  `head.linear_c4.proj`, `head.linear_fuse.conv` + `.bn`, `head.linear_pred`.
- "v4": transformers 4.x (`segformer.encoder.block.2.12.attention.self.key`, ...). This is our
  canonical spelling: it is the one transformers' own conversion script targets.
- "v5": transformers 5.x renamed the modules (`segformer.stages.2.blocks.12.attention.k_proj`, ...).

Names here are relative to `SegformerForSemanticSegmentation` (no `net.` prefix). Which of v4 / v5 a
live model uses is read from its own state dict, never assumed from the installed version number,
so checkpoints move between transformers majors in both directions.
"""

from __future__ import annotations

import re

# v4 -> v5, applied in order (mirrors transformers 5's own legacy-name table for Segformer).
_V4_TO_V5 = [
    (r"segformer\.encoder\.patch_embeddings\.(\d+)\.", r"segformer.stages.\1.patch_embeddings."),
    (r"segformer\.encoder\.block\.(\d+)\.(\d+)\.", r"segformer.stages.\1.blocks.\2."),
    (r"segformer\.encoder\.layer_norm\.(\d+)\.", r"segformer.stages.\1.layer_norm."),
    (r"\.attention\.self\.query\.", ".attention.q_proj."),
    (r"\.attention\.self\.key\.", ".attention.k_proj."),
    (r"\.attention\.self\.value\.", ".attention.v_proj."),
    (r"\.attention\.self\.sr\.", ".attention.sequence_reduction.sequence_reduction."),
    (r"\.attention\.self\.layer_norm\.", ".attention.sequence_reduction.layer_norm."),
    (r"\.attention\.output\.dense\.", ".attention.o_proj."),
    (r"\.mlp\.dense1\.", ".mlp.fc1."),
    (r"\.mlp\.dense2\.", ".mlp.fc2."),
    (r"\.layer_norm_1\.", ".layernorm_before."),
    (r"\.layer_norm_2\.", ".layernorm_after."),
    (r"^decode_head\.linear_c\.", "decode_head.linear_projections."),
]

_V5_TO_V4 = [
    (r"segformer\.stages\.(\d+)\.patch_embeddings\.", r"segformer.encoder.patch_embeddings.\1."),
    (r"segformer\.stages\.(\d+)\.blocks\.(\d+)\.", r"segformer.encoder.block.\1.\2."),
    (r"segformer\.stages\.(\d+)\.layer_norm\.", r"segformer.encoder.layer_norm.\1."),
    (r"\.attention\.q_proj\.", ".attention.self.query."),
    (r"\.attention\.k_proj\.", ".attention.self.key."),
    (r"\.attention\.v_proj\.", ".attention.self.value."),
    (r"\.attention\.sequence_reduction\.sequence_reduction\.", ".attention.self.sr."),
    (r"\.attention\.sequence_reduction\.layer_norm\.", ".attention.self.layer_norm."),
    (r"\.attention\.o_proj\.", ".attention.output.dense."),
    (r"\.mlp\.fc1\.", ".mlp.dense1."),
    (r"\.mlp\.fc2\.", ".mlp.dense2."),
    (r"\.layernorm_before\.", ".layer_norm_1."),
    (r"\.layernorm_after\.", ".layer_norm_2."),
    (r"^decode_head\.linear_projections\.", "decode_head.linear_c."),
]


def _apply(rules, key: str) -> str:
    for pattern, repl in rules:
        key = re.sub(pattern, repl, key)
    return key


def spelling(keys) -> str:
    """'v5' when the names use transformers 5's stage modules, else 'v4'."""
    return "v5" if any(k.startswith("segformer.stages.") for k in keys) else "v4"


def to_v4(key: str) -> str:
    return _apply(_V5_TO_V4, key)  # the v5 patterns never match a v4 name


def to_v5(key: str) -> str:
    return _apply(_V4_TO_V5, key)


def respell(state: dict, target: str) -> dict:
    """The same tensors under the target spelling ('v4' or 'v5'); unknown keys pass through."""
    out = {}
    for key, value in state.items():
        v4 = to_v4(key)
        out[to_v5(v4) if target == "v5" else v4] = value
    return out


# --- the authors' (MiT / mmseg) spelling <-> v4 -------------------------------------------------

_AUTHORS_TO_V4 = [
    (r"^encoder\.patch_embed(\d)\.norm\.", lambda m: f"segformer.encoder.patch_embeddings.{int(m[1]) - 1}.layer_norm."),
    (r"^encoder\.patch_embed(\d)\.", lambda m: f"segformer.encoder.patch_embeddings.{int(m[1]) - 1}."),
    (r"^encoder\.block(\d)\.(\d+)\.", lambda m: f"segformer.encoder.block.{int(m[1]) - 1}.{m[2]}."),
    (r"^encoder\.norm(\d)\.", lambda m: f"segformer.encoder.layer_norm.{int(m[1]) - 1}."),
    (r"\.norm1\.", ".layer_norm_1."),
    (r"\.norm2\.", ".layer_norm_2."),
    (r"\.attn\.q\.", ".attention.self.query."),
    (r"\.attn\.proj\.", ".attention.output.dense."),
    (r"\.attn\.sr\.", ".attention.self.sr."),
    (r"\.attn\.norm\.", ".attention.self.layer_norm."),
    (r"\.attn\.kv\.", ".attention.self.kv."),  # split into key / value afterwards
    (r"\.mlp\.fc1\.", ".mlp.dense1."),
    (r"\.mlp\.fc2\.", ".mlp.dense2."),
    (r"^head\.linear_c(\d)\.", lambda m: f"decode_head.linear_c.{int(m[1]) - 1}."),
    (r"^head\.linear_fuse\.conv\.", "decode_head.linear_fuse."),
    (r"^head\.linear_fuse\.bn\.", "decode_head.batch_norm."),
    (r"^head\.linear_pred\.", "decode_head.classifier."),
]

_V4_TO_AUTHORS = [
    (r"^segformer\.encoder\.patch_embeddings\.(\d)\.layer_norm\.", lambda m: f"encoder.patch_embed{int(m[1]) + 1}.norm."),
    (r"^segformer\.encoder\.patch_embeddings\.(\d)\.", lambda m: f"encoder.patch_embed{int(m[1]) + 1}."),
    (r"^segformer\.encoder\.block\.(\d)\.(\d+)\.", lambda m: f"encoder.block{int(m[1]) + 1}.{m[2]}."),
    (r"^segformer\.encoder\.layer_norm\.(\d)\.", lambda m: f"encoder.norm{int(m[1]) + 1}."),
    (r"\.layer_norm_1\.", ".norm1."),
    (r"\.layer_norm_2\.", ".norm2."),
    (r"\.attention\.self\.query\.", ".attn.q."),
    (r"\.attention\.output\.dense\.", ".attn.proj."),
    (r"\.attention\.self\.sr\.", ".attn.sr."),
    (r"\.attention\.self\.layer_norm\.", ".attn.norm."),
    (r"\.attention\.self\.kv\.", ".attn.kv."),
    (r"\.mlp\.dense1\.", ".mlp.fc1."),
    (r"\.mlp\.dense2\.", ".mlp.fc2."),
    (r"^decode_head\.linear_c\.(\d)\.", lambda m: f"head.linear_c{int(m[1]) + 1}."),
    (r"^decode_head\.linear_fuse\.", "head.linear_fuse.conv."),
    (r"^decode_head\.batch_norm\.", "head.linear_fuse.bn."),
    (r"^decode_head\.classifier\.", "head.linear_pred."),
]

_KV = re.compile(r"^(.*)\.attention\.self\.kv\.(weight|bias)$")
_KEY_OR_VALUE = re.compile(r"^(.*)\.attention\.self\.(key|value)\.(weight|bias)$")


def authors_to_v4(state: dict) -> dict:
    """Authors' names (without `module.segmodel.`) -> v4 names; each fused kv becomes key and value
    (rows: first half keys, second half values, as the original attention slices them)."""
    out = {}
    for key, value in state.items():
        new = _apply(_AUTHORS_TO_V4, key)
        m = _KV.match(new)
        if m:
            half = value.shape[0] // 2
            out[f"{m[1]}.attention.self.key.{m[2]}"] = value[:half].clone()
            out[f"{m[1]}.attention.self.value.{m[2]}"] = value[half:].clone()
        else:
            out[new] = value
    return out


def v4_shapes_to_authors(shapes: dict) -> dict:
    """v4 name -> shape, to the authors' name -> shape (key and value fuse into one kv)."""
    out: dict = {}
    for key, shape in shapes.items():
        m = _KEY_OR_VALUE.match(key)
        if m:
            fused = f"{m[1]}.attention.self.kv.{m[3]}"
            name = _apply(_V4_TO_AUTHORS, fused)
            rows = out.get(name, (0,) + tuple(shape[1:]))[0] + shape[0]
            out[name] = (rows,) + tuple(shape[1:])
        else:
            out[_apply(_V4_TO_AUTHORS, key)] = tuple(shape)
    return out
