"""The shipped training configs load, name only shipped datasets and splits, and the two paper configs
say what the paper says (sec. 4.1, appendix B); ImageNet backbone weights load by path."""

from pathlib import Path

import pytest
import torch

from trainer.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "trainer" / "configs"
PAPER = {"ssiw-paper.yaml": "segformer-b5", "hrnet-paper.yaml": "hrnet-w48"}
NINE = {"ade20k-150", "mapillary-vistas-v1.2", "coco-panoptic-133", "idd", "bdd100k", "cityscapes", "sunrgbd",
        "openimages-v6-seg", "objects365-v2"}


@pytest.mark.parametrize(("name", "model"), sorted(PAPER.items()))
def test_paper_configs_follow_the_paper(name, model):
    cfg = load_config(CONFIGS / name)
    assert cfg.model == model
    assert {d.name for d in cfg.datasets} == NINE
    assert {d.ratio for d in cfg.datasets} == {1.0}  # equal shares of each batch
    caps = {d.name: d.max_samples for d in cfg.datasets if d.max_samples}
    assert caps == {"openimages-v6-seg": 700_000, "objects365-v2": 1_000_000}
    assert "open_clip-ViT-B-32" in str(cfg.table) and cfg.box_targets == "image" and cfg.box_dim == 512
    assert cfg.weights is not None and cfg.init is None  # an ImageNet-pretrained backbone, by path
    assert cfg.batch_size == 2 and cfg.short_edge == 1080 and cfg.scale == (1.0, 1.0)
    assert cfg.ld_quantile == 0.7 and cfg.loss_weights == (1.0, 1.0, 1.0) and cfg.softmax_over == "all"
    assert set(cfg.held_out_labels) == {"lizard", "shark", "frog", "deer", "duck"}  # Table 4's unseen labels
    if model == "segformer-b5":
        assert (cfg.optimizer, cfg.lr, cfg.crop) == ("adamw", pytest.approx(6e-5), (640, 640))
    else:
        assert (cfg.optimizer, cfg.lr, cfg.crop) == ("sgd", pytest.approx(0.01), (713, 713))
    assert cfg.poly_power == 1.0


def test_imagenet_mit_weights_load_from_a_transformers_folder(tmp_path):
    """nvidia/mit-b5 is a SegformerForImageClassification folder: its encoder becomes ours, the head is new."""
    from transformers import SegformerConfig, SegformerForImageClassification

    from trainer.model.networks import SegformerEmbed

    torch.manual_seed(0)
    small = SegformerConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 1, 1],
                            decoder_hidden_size=16, num_labels=10)
    imagenet = SegformerForImageClassification(small)
    imagenet.save_pretrained(tmp_path / "mit")
    net = SegformerEmbed(6, str(tmp_path / "mit"))
    ours = net.net.segformer.state_dict()
    for key, value in imagenet.segformer.state_dict().items():
        assert torch.equal(ours[key], value), key
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 6, 16, 16)


def test_imagenet_hrnet_weights_load_from_timms_classification_file(tmp_path, capsys):
    """timm's hrnet_w48 ImageNet file (model.safetensors) holds every tensor of our HRNet-W48 backbone."""
    import timm
    from safetensors.torch import save_file

    from trainer.model.networks import build_model

    torch.manual_seed(1)
    classifier = timm.create_model("hrnet_w48", pretrained=False)
    save_file({k: v.contiguous() for k, v in classifier.state_dict().items()}, tmp_path / "model.safetensors")
    net = build_model("hrnet-w48", 8, str(tmp_path / "model.safetensors"))
    backbone = net.backbone.state_dict()
    reference = classifier.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in backbone.items())
    assert "left at initialisation" not in capsys.readouterr().out


@pytest.mark.parametrize(("name", "dataset", "split", "epochs"), [
    ("finetune-nyudv2-40.yaml", "nyudv2-40", "train", 100), ("finetune-pascal-context.yaml", "pascal-context", "train", 50)])
def test_table5_fine_tuning_recipes(name, dataset, split, epochs, tmp_path):
    """Table 5: 100 epochs on NYU, 50 on Pascal Context, from the trained model; epochs are passes over the split."""
    import polars as pl

    from trainer.train import with_epochs

    cfg = load_config(CONFIGS / name)
    assert [(d.name, d.split) for d in cfg.datasets] == [(dataset, split)]
    assert cfg.epochs == epochs and cfg.init is not None and cfg.weights is None
    assert "open_clip-ViT-B-32" in str(cfg.table)
    (tmp_path / dataset).mkdir()
    pl.DataFrame({"key": [f"k{i}" for i in range(795)]}).write_parquet(tmp_path / dataset / f"{split}.manifest.parquet")
    resolved = with_epochs(cfg.model_copy(update={"shards": str(tmp_path)}), world=8)
    assert resolved.epoch_samples == 795  # one pass over the split
    assert resolved.steps == -(-epochs * 795 // (cfg.batch_size * 8))
