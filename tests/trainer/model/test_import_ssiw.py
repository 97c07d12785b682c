"""`ssiw import-ssiw`: a state dict in the authors' key names and shapes (random values) imports, loads
strictly into our segformer-b5 and segments; wrong or truncated files are refused with a clear error."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import BadInput
from trainer.model.import_ssiw import (
    ReleaseError,
    check_layout,
    expected_layout,
    read_embeddings,
    universal_names,
)
from trainer.model.networks import build_model
from trainer.model.segformer_keys import authors_to_v4, respell, spelling, to_v4, to_v5

# Written out by hand from the MiT-B5 / SegFormer code the release was trained with (not derived
# from our model): if our model or the mapping drifts, these stop matching.
REAL_KEYS = {
    "encoder.patch_embed1.proj.weight": (64, 3, 7, 7),
    "encoder.patch_embed2.proj.weight": (128, 64, 3, 3),
    "encoder.patch_embed4.norm.bias": (512,),
    "encoder.block1.0.attn.sr.weight": (64, 64, 8, 8),
    "encoder.block1.2.norm1.weight": (64,),
    "encoder.block2.5.mlp.dwconv.dwconv.weight": (512, 1, 3, 3),
    "encoder.block3.12.attn.kv.weight": (640, 320),
    "encoder.block3.39.mlp.fc1.weight": (1280, 320),
    "encoder.block4.2.attn.q.weight": (512, 512),
    "encoder.block4.2.attn.proj.bias": (512,),
    "encoder.norm3.weight": (320,),
    "head.linear_c1.proj.weight": (768, 64),
    "head.linear_c4.proj.weight": (768, 512),
    "head.linear_fuse.conv.weight": (768, 3072, 1, 1),
    "head.linear_fuse.bn.running_var": (768,),
    "head.linear_pred.weight": (512, 768, 1, 1),
    "head.linear_pred.bias": (512,),
}
LEFT_OUT = {
    "module.segmodel.auxi_net.convs.0.conv.weight": (256, 320, 3, 3),
    "module.segmodel.auxi_net.conv_seg.weight": (512, 256, 1, 1),
    "module.segmodel.head.conv_seg.weight": (512, 128, 1, 1),
    "module.criterion.0.criterion.weight": (194,),
}


@pytest.fixture(scope="module")
def layout():
    with torch.device("meta"):
        net = build_model("segformer-b5", 512)
    return expected_layout(net)


@pytest.fixture(scope="module")
def release(tmp_path_factory, layout):
    """Their file layout: {'state_dict': {'module.segmodel.' + name: tensor}} plus the parts left out."""
    folder = tmp_path_factory.mktemp("release")
    gen = torch.Generator().manual_seed(0)
    state = {}
    for name, shape in layout.items():
        state["module.segmodel." + name] = (torch.randn(shape, generator=gen) * 0.05 if shape
                                            else torch.tensor(7))
        if name.endswith("running_var"):
            state["module.segmodel." + name] = torch.rand(shape, generator=gen) + 0.5  # a variance is positive
    for name, shape in LEFT_OUT.items():
        state[name] = torch.zeros(shape)
    ckpt = folder / "segformer_7data.pth"
    torch.save({"state_dict": state}, ckpt)
    emb = np.random.default_rng(0).normal(size=(512, 194)).astype(np.float32)  # their .npy is 512 x 194
    np.save(folder / "universal_cat2vec.npy", emb)
    return folder, state, emb


@pytest.fixture(scope="module")
def imported(release, tmp_path_factory):
    folder, _, _ = release
    run = tmp_path_factory.mktemp("runs") / "ssiw-release"
    result = CliRunner().invoke(app, ["import-ssiw", str(folder / "segformer_7data.pth"),
                                      str(folder / "universal_cat2vec.npy"), "--out", str(run)])
    assert result.exit_code == 0, result.output
    return run


def test_layout_has_the_releases_real_names_and_shapes(layout):
    for name, shape in REAL_KEYS.items():
        assert layout.get(name) == shape, name
    assert len([k for k in layout if ".attn.kv.weight" in k]) == 3 + 6 + 40 + 3
    assert not any(".attn.k." in k or "key" in k for k in layout)


def test_every_tensor_lands_where_transformers_conversion_puts_it(release):
    _, state, _ = release
    ours = authors_to_v4({k.removeprefix("module.segmodel."): v for k, v in state.items()
                          if k.startswith("module.segmodel.")})
    kv = state["module.segmodel.encoder.block3.12.attn.kv.weight"]
    assert torch.equal(ours["segformer.encoder.block.2.12.attention.self.key.weight"], kv[:320])
    assert torch.equal(ours["segformer.encoder.block.2.12.attention.self.value.weight"], kv[320:])
    pairs = {
        "encoder.patch_embed1.norm.weight": "segformer.encoder.patch_embeddings.0.layer_norm.weight",
        "encoder.block1.0.norm2.bias": "segformer.encoder.block.0.0.layer_norm_2.bias",
        "encoder.block1.0.attn.norm.weight": "segformer.encoder.block.0.0.attention.self.layer_norm.weight",
        "encoder.block1.0.attn.sr.weight": "segformer.encoder.block.0.0.attention.self.sr.weight",
        "encoder.block4.1.attn.proj.weight": "segformer.encoder.block.3.1.attention.output.dense.weight",
        "encoder.block2.0.mlp.fc2.weight": "segformer.encoder.block.1.0.mlp.dense2.weight",
        "encoder.norm2.bias": "segformer.encoder.layer_norm.1.bias",
        "head.linear_c3.proj.weight": "decode_head.linear_c.2.proj.weight",
        "head.linear_fuse.conv.weight": "decode_head.linear_fuse.weight",
        "head.linear_fuse.bn.running_mean": "decode_head.batch_norm.running_mean",
        "head.linear_pred.weight": "decode_head.classifier.weight",
    }
    for theirs, v4 in pairs.items():
        assert torch.equal(ours[v4], state["module.segmodel." + theirs]), theirs


def test_transformers_4_and_5_spellings_translate_both_ways():
    with torch.device("meta"):
        net = build_model("segformer-b5", 16)
    keys = [k.removeprefix("net.") for k in net.state_dict()]
    installed = spelling(keys)
    for k in keys:
        assert to_v5(to_v4(k)) == (k if installed == "v5" else to_v5(k))
    v4 = {to_v4(k) for k in keys}
    assert {"segformer.encoder.block.2.39.attention.self.query.weight", "segformer.encoder.layer_norm.3.weight",
            "decode_head.linear_c.0.proj.weight", "decode_head.batch_norm.num_batches_tracked"} <= v4
    assert len(v4) == len(keys)


def test_a_checkpoint_in_the_other_transformers_spelling_loads(tmp_path):
    torch.manual_seed(0)
    a = build_model("segformer-b5", 8)
    other = "v4" if a.spelling == "v5" else "v5"
    state = {f"net.{k}": v for k, v in respell({k[4:]: v for k, v in a.state_dict().items()}, other).items()}
    assert set(state) != set(a.state_dict())
    with torch.device("meta"):
        b = build_model("segformer-b5", 8)
    b.load_state_dict(state, strict=True, assign=True)
    for k, v in a.state_dict().items():
        assert torch.equal(b.state_dict()[k], v)


def test_import_loads_strictly_and_records_the_label_space(imported, release):
    _, _, emb = release
    ckpt = torch.load(imported / "checkpoints" / "step-0000000.pt", weights_only=True)
    with torch.device("meta"):
        net = build_model("segformer-b5", 512)
    result = net.load_state_dict(ckpt["model"], strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    ls = ckpt["label_space"]
    assert ls["encoder"] == "open_clip:ViT-B-32:openai"
    assert ls["names"] == universal_names() and len(ls["names"]) == 194
    assert ls["names"][:3] == ["backpack", "umbrella", "bag"] and ls["names"][-1] == "window_blind"
    expected = emb.T / np.linalg.norm(emb.T, axis=1, keepdims=True)
    np.testing.assert_allclose(ls["vectors"], expected, rtol=1e-6)
    assert ckpt["config"]["inference"] == "authors" and ckpt["config"]["model"] == "segformer-b5"
    assert float(ckpt["criterion"]["log_tau"]) == pytest.approx(np.log(0.01))
    record = json.loads((imported / "import.json").read_text())
    assert sorted(record["left_out"]) == sorted(k.removeprefix("module.").removeprefix("segmodel.")
                                                for k in LEFT_OUT)
    assert (imported / "labels.txt").read_text().split("\n")[0] == "backpack"


def test_segment_on_the_imported_run_writes_the_label_png(imported, tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "street.jpg")
    out = tmp_path / "seg"
    result = CliRunner().invoke(app, ["segment", str(imported), str(tmp_path / "street.jpg"), "--scale", "64",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    labels = np.asarray(Image.open(out / "street.label.png"))
    assert labels.shape == (45, 70) and labels.dtype == np.uint8 and labels.max() < 194
    assert (out / "street.overlay.png").is_file()
    cut = CliRunner().invoke(app, ["segment", str(imported), str(tmp_path / "street.jpg"), "--scale", "64",
                                   "--confidence", "0.999999", "--out", str(tmp_path / "cut")])
    assert cut.exit_code == 0, cut.output
    cut_labels = np.asarray(Image.open(tmp_path / "cut" / "street.label.png"))
    assert (cut_labels == 255).any() and set(np.unique(cut_labels)) <= set(np.unique(labels)) | {255}


def test_label_without_clip_weights_says_what_it_needs(imported, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    result = CliRunner().invoke(app, ["segment", str(imported), str(tmp_path / "a.png"),
                                      "--label", "deer: A deer is a hoofed mammal.", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "open_clip:ViT-B-32:openai" in result.output and "--encoder open_clip:ViT-B-32:/path" in result.output


def test_embeddings_in_either_orientation(tmp_path):
    emb = np.random.default_rng(0).normal(size=(194, 512)).astype(np.float32)
    np.save(tmp_path / "rows.npy", emb)
    np.save(tmp_path / "cols.npy", emb.T)
    a, b = read_embeddings(tmp_path / "rows.npy", 512), read_embeddings(tmp_path / "cols.npy", 512)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (194, 512)
    np.save(tmp_path / "bad.npy", emb[:, :300])
    with pytest.raises(ReleaseError, match="bad.npy.*shape"):
        read_embeddings(tmp_path / "bad.npy", 512)


def test_layout_errors_name_the_tensors(layout):
    state = {k: torch.empty(s) for k, s in layout.items()}
    state.pop("encoder.block3.7.attn.q.weight")
    state["encoder.block3.12.attn.kv.weight"] = torch.empty(320, 320)
    state["encoder.block5.0.attn.q.weight"] = torch.empty(4, 4)
    state["auxi_net.conv_seg.weight"] = torch.empty(1)  # left out, not an error
    with pytest.raises(ReleaseError) as err:
        check_layout(state, layout, "their.pth")
    message = str(err.value)
    assert message.startswith("their.pth: ")
    assert "1 tensors missing" in message and "encoder.block3.7.attn.q.weight" in message
    assert "encoder.block5.0.attn.q.weight" in message
    assert "encoder.block3.12.attn.kv.weight [320, 320] (expected [640, 320])" in message


def test_wrong_or_truncated_files_are_refused(release, tmp_path):
    folder, _, _ = release
    npy = str(folder / "universal_cat2vec.npy")
    truncated = tmp_path / "truncated.pth"
    with open(folder / "segformer_7data.pth", "rb") as f:
        truncated.write_bytes(f.read(1 << 20))
    small = tmp_path / "other.pth"
    torch.save({"state_dict": {"module.segmodel.encoder.patch_embed1.proj.weight": torch.zeros(64, 3, 7, 7),
                               "module.backbone.layer1.weight": torch.zeros(3)}}, small)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    cases = {truncated: "not a readable PyTorch checkpoint", small: "not the SSIW SegFormer-B5 release layout",
             text: "not a readable PyTorch checkpoint"}
    for path, reason in cases.items():
        result = CliRunner().invoke(app, ["import-ssiw", str(path), npy, "--out", str(tmp_path / path.stem)])
        assert result.exit_code == 1, result.output
        assert str(path) in result.output and reason in result.output
        assert not (tmp_path / path.stem / "checkpoints").exists()
    result = CliRunner().invoke(app, ["import-ssiw", str(small), npy, "--out", str(tmp_path / "x")])
    assert "backbone.layer1.weight" in result.output and "tensors missing" in result.output


def test_an_imported_run_is_an_init_for_fine_tuning(imported):
    from trainer.model.init_from import load_init

    with torch.device("meta"):
        net = build_model("segformer-b5", 512)
    loaded = load_init(net, imported, "segformer-b5", 512, "open_clip:ViT-B-32:openai")
    assert loaded["step"] == 0 and loaded["note"] == ""
    with pytest.raises(ValueError, match="512-d embeddings .*384-d .*minilm"):
        load_init(net, imported, "segformer-b5", 384, "minilm")


def test_labels_file_overrides_the_names(tmp_path):
    from trainer.model.import_ssiw import read_label_names

    (tmp_path / "names.txt").write_text("# my names\nroad\n\nsky\ncar\n")
    assert read_label_names(tmp_path / "names.txt", 3) == ["road", "sky", "car"]
    with pytest.raises(ReleaseError, match="names.txt: 3 names, but the embeddings have 194 rows"):
        read_label_names(tmp_path / "names.txt", 194)
    (tmp_path / "twice.txt").write_text("road\nroad\n")
    with pytest.raises(ReleaseError, match="given twice: \\['road'\\]"):
        read_label_names(tmp_path / "twice.txt", 2)


def _varied_labels(run, image, k: int):
    """A table of k label vectors that split this random network's embeddings of `image` several ways:
    +-the main directions in which its pixels differ, with the shared mean direction projected out
    (random weights give nearly the same embedding everywhere, so random labels would all lose to one)."""
    from tests.support.synthetic import tiny_table
    from trainer.model.normalise import normalise_images
    from trainer.predict.predictor import Predictor

    net = Predictor.from_checkpoint(run).net
    with torch.no_grad():
        emb = net(normalise_images(torch.from_numpy(image).permute(2, 0, 1)[None], "cpu"))[0]
    flat = emb.flatten(1).double()  # (C, pixels)
    mean = flat.mean(1, keepdim=True)
    u, _, _ = torch.linalg.svd(flat - mean, full_matrices=False)
    along = (mean / mean.norm())[:, 0]
    dirs = [u[:, i] - (u[:, i] @ along) * along for i in range(k // 2)]
    vectors = torch.stack([d * sign for d in dirs for sign in (1, -1)]).float().numpy()
    table = tiny_table({"scenes": k}, dim=emb.shape[0])
    table.vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return table


def test_eval_with_the_authors_protocol_matches_segment_pixel_for_pixel(imported, tmp_path):
    """`ssiw eval --protocol authors` scores the very labels `ssiw segment` writes for an imported run:
    the truth here IS segment's label PNG, so pixel accuracy 1.0 means every pixel agrees."""
    from tests.support.synthetic import write_dense_shard, write_tiny_table

    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    image[:, 28:] //= 3  # two halves, so more than one label is likely
    Image.fromarray(image).save(tmp_path / "scene.jpg", quality=95)
    table = write_tiny_table(tmp_path / "table.parquet", _varied_labels(imported, image, 6))
    scale = "72"  # the release's own test uses 720; a small edge keeps SegFormer-B5 quick on a CPU
    seg = CliRunner().invoke(app, ["segment", str(imported), str(tmp_path / "scene.jpg"), "--dataset", "scenes",
                                   "--table", str(table), "--scale", scale, "--out", str(tmp_path / "seg")])
    assert seg.exit_code == 0, seg.output
    truth = (tmp_path / "seg" / "scene.label.png").read_bytes()
    write_dense_shard(tmp_path / "shards" / "scenes" / "validation-000000.tar",
                      [("scene", (tmp_path / "scene.jpg").read_bytes(), truth)], "scenes", num_classes=6,
                      split="validation")

    def evaluate(*extra):
        out = tmp_path / f"eval{len(extra)}"
        res = CliRunner().invoke(app, ["eval", str(imported), "--dataset", "scenes", "--shards",
                                       str(tmp_path / "shards"), "--table", str(table), "--scale", scale,
                                       "--multi-scales", "", "--out", str(out), *extra])
        assert res.exit_code == 0, res.output
        return json.loads((out / "results.json").read_text())

    authors = evaluate("--protocol", "authors")
    assert authors["protocol"] == "authors" and authors["single_scale"]["scales"] == [72]
    assert authors["single_scale"]["pixel_accuracy"] == 1.0
    assert len(np.unique(np.asarray(Image.open(tmp_path / "seg" / "scene.label.png")))) > 1  # not one label
    ours = evaluate()
    assert ours["protocol"] == "ours"
    assert ours["single_scale"]["pixel_accuracy"] < 1.0  # the trainer's own inference is another procedure


def test_authors_protocol_defaults_to_their_720_single_scale(imported, tmp_path):
    from trainer.predict.evaluate import evaluate_checkpoint
    from trainer.predict.predictor import Predictor

    pred = Predictor.from_checkpoint(imported)
    torch.manual_seed(0)
    pred.net = torch.nn.Conv2d(3, 512, 4, stride=4)  # a stride-4 stand-in: a B5 pass at 720 px is slow on a CPU
    image = np.random.default_rng(4).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    target = np.zeros((20, 30), dtype=np.int64)
    vectors = np.random.default_rng(5).normal(size=(3, 512)).astype(np.float32)
    res = evaluate_checkpoint(imported, "x", [("a", image, target)], vectors=vectors, multi_scales=(),
                              predictor=pred, protocol="authors")
    assert res["single_scale"]["scales"] == [720] and "multi_scale" not in res
    with pytest.raises(BadInput, match="unknown protocol 'theirs'"):
        evaluate_checkpoint(imported, "x", [], vectors=vectors, predictor=pred, protocol="theirs")
