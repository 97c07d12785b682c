"""Models and optimisation as the paper has them: HRNetV2-W48 branch features, batch norm synced
across processes (2-process gloo run), no weight decay on the temperature / norms / biases, the
HRNet paper config, image corruption, and L_WD's box visibility rule."""

import io
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

from trainer.config import load_config
from trainer.data.augment import AugmentParams, decode_sample
from trainer.data.corrupt import KINDS, corrupt
from trainer.model.networks import ProcessSyncBatchNorm, build_model, convert_sync_batch_norm
from trainer.train import build_optimizer, param_groups

ROOT = Path(__file__).resolve().parents[3]


def test_hrnet_w48_uses_the_hrnetv2_branch_outputs():
    torch.manual_seed(0)
    net = build_model("hrnet-w48", 16)  # random weights
    assert net.backbone.feature_info.channels() == [48, 96, 192, 384]
    assert net.backbone.feature_info.reduction() == [4, 8, 16, 32]
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        feats = net.backbone(x)
        out = net(x)
    assert [tuple(f.shape) for f in feats] == [(1, 48, 16, 24), (1, 96, 8, 12), (1, 192, 4, 6), (1, 384, 2, 3)]
    assert net.fuse[0].in_channels == 720 and net.fuse[0].out_channels == 720  # concatenated, as HRNetV2
    assert tuple(out.shape) == (1, 16, 16, 24)  # one embedding per pixel at 1/4


def test_hrnet_paper_config():
    cfg = load_config(ROOT / "trainer" / "configs" / "hrnet-paper.yaml")
    assert (cfg.model, cfg.optimizer, cfg.lr, cfg.momentum, tuple(cfg.crop)) == ("hrnet-w48", "sgd", 0.01, 0.9, (713, 713))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    opt = build_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9


def test_no_weight_decay_on_temperature_norms_and_biases():
    from trainer.losses import SentenceLoss

    class Both(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = build_model("tiny", 8, width=8)
            self.criterion = SentenceLoss(torch.eye(8), 8, tau=0.07)

    model = Both()
    groups = param_groups(model, 0.01)
    plain = {id(p) for p in groups[1]["params"]}
    assert groups[1]["weight_decay"] == 0.0 and groups[0]["weight_decay"] == 0.01
    assert id(model.criterion.log_tau) in plain
    assert id(model.net.body[0][1].weight) in plain and id(model.net.head.bias) in plain  # BN scale, bias
    assert id(model.net.head.weight) not in plain
    for name in ("adamw", "sgd"):
        from trainer.config import TrainConfig

        cfg = TrainConfig(shards="s", datasets=[{"name": "a"}], optimizer=name, lr=0.01, weight_decay=0.1)
        model = Both()
        opt = build_optimizer(model, cfg)
        kernel = model.net.head.weight.detach().clone()
        for _ in range(200):  # zero gradients: only weight decay can move a parameter
            for p in model.parameters():
                p.grad = torch.zeros_like(p)
            opt.step()
        assert float(model.criterion.log_tau.detach().exp()) == pytest.approx(0.07, abs=0, rel=1e-7), name
        assert model.net.head.weight.norm() < 0.9 * kernel.norm(), name  # decay does act on kernels


def _sync_bn_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    bn = convert_sync_batch_norm(torch.nn.BatchNorm2d(3), "cpu").train()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    g = torch.Generator().manual_seed(100 + rank)
    x = (torch.randn(2 + rank, 3, 4, 5, generator=g) * (rank + 1) + rank).requires_grad_()  # different sizes
    w = torch.randn(x.shape, generator=g)
    out = bn(x)
    (out * w).sum().backward()
    torch.save({"x": x.detach(), "w": w, "out": out.detach(), "xgrad": x.grad, "wgrad": bn.weight.grad,
                "bgrad": bn.bias.grad, "mean": bn.running_mean, "var": bn.running_var,
                "is_sync": isinstance(bn, ProcessSyncBatchNorm)}, os.path.join(out_dir, f"bn{rank}.pt"))
    dist.destroy_process_group()


def test_batch_norm_syncs_statistics_and_gradients_across_two_gloo_processes(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_sync_bn_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r = [torch.load(tmp_path / f"bn{i}.pt") for i in range(2)]
    assert r[0]["is_sync"] and r[1]["is_sync"]
    ref = torch.nn.BatchNorm2d(3).train()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        ref.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    x = torch.cat([r[0]["x"], r[1]["x"]]).requires_grad_()
    out = ref(x)
    (out * torch.cat([r[0]["w"], r[1]["w"]])).sum().backward()
    torch.testing.assert_close(torch.cat([r[0]["out"], r[1]["out"]]), out.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.cat([r[0]["xgrad"], r[1]["xgrad"]]), x.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(r[0]["wgrad"] + r[1]["wgrad"], ref.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(r[0]["bgrad"] + r[1]["bgrad"], ref.bias.grad, rtol=1e-4, atol=1e-5)
    for i in range(2):  # every process holds the global running statistics
        torch.testing.assert_close(r[i]["mean"], ref.running_mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(r[i]["var"], ref.running_var, rtol=1e-4, atol=1e-5)
    # a per-process batch norm would differ: each rank's own statistics
    own = torch.nn.functional.batch_norm(r[0]["x"], None, None, ref.weight.detach(), ref.bias.detach(), True)
    assert not torch.allclose(own, r[0]["out"], atol=1e-3)


def test_converted_model_keeps_its_weights_and_state_dict_keys():
    net = build_model("tiny", 8, width=8)
    with torch.no_grad():
        net.body[0][1].running_mean.fill_(0.3)
    conv = convert_sync_batch_norm(net, "cpu")
    assert isinstance(conv.body[0][1], ProcessSyncBatchNorm)
    assert set(conv.state_dict()) == set(build_model("tiny", 8, width=8).state_dict())
    assert float(conv.body[0][1].running_mean[0]) == pytest.approx(0.3)
    x = torch.randn(2, 3, 16, 16)
    conv.eval(), net.eval()
    torch.testing.assert_close(conv(x), net(x))  # one process: plain batch norm


@pytest.mark.parametrize("kind", KINDS)
def test_each_corruption_changes_the_image_and_keeps_its_size(kind):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64]
    arr = np.stack([(xx * 4) % 256, (yy * 5) % 256, ((xx + yy) * 3) % 256], -1).astype(np.uint8)
    image = Image.fromarray(arr)
    mild = np.asarray(corrupt(image, kind, 1, rng), dtype=np.float64)
    strong = np.asarray(corrupt(image, kind, 5, rng), dtype=np.float64)
    assert mild.shape == strong.shape == arr.shape
    d1, d5 = np.abs(mild - arr).mean(), np.abs(strong - arr).mean()
    assert 0 < d1 < d5  # visible, and stronger with severity
    with pytest.raises(ValueError, match="severity"):
        corrupt(image, kind, 6, rng)


@pytest.mark.parametrize(("min_visible", "kept"), [(0.0, True), (0.5, True), (0.6, False), (1.0, False)])
def test_wd_keeps_a_box_only_when_enough_of_it_is_in_the_crop(min_visible, kept):
    from pipeline.shard_format import ShardRecord, parse_sample
    from trainer.data.augment import _boxes

    image = np.zeros((100, 100, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    boxes = [[30, 10, 70, 40, 1], [5, 5, 25, 25, 2]]
    record = ShardRecord(dataset="t", split="train", supervision="box", width=100, height=100, num_classes=3,
                         ignore_index=255, classes_present=[1, 2], boxes=boxes, box_embedding_encoder=None,
                         sources={"image": "t.png"})
    sample = parse_sample({"__key__": "t-1", "json": record.to_json(), "png": buf.getvalue()})
    # crop = the top-left 50x50 at scale 1; the first box spans x 30..70: 20 of its 40 columns are inside
    got, classes, _ = _boxes(sample, 1.0, 0, 0, 50, 50, min_visible)
    assert classes.tolist() == ([1, 2] if kept else [2])  # the wholly visible box always stays
    if kept:
        assert got[0].tolist() == [30, 10, 50, 40]  # clipped to the crop
    # through decode_sample: the whole image is the crop, so every box is fully visible
    p = AugmentParams(short_edge=100, scale=(1.0, 1.0), crop=(100, 100), flip=False, jitter=0, blur_prob=0,
                      box_min_visible=min_visible)
    s = decode_sample({"__key__": "t-1", "json": record.to_json(), "png": buf.getvalue()},
                      np.random.default_rng(0), p)
    assert s.box_classes.tolist() == [1, 2]
