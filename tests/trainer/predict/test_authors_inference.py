"""The authors' single-scale inference: resize, centred mean-colour padding, align_corners upsampling of
embeddings, cosine, softmax(100 x cos), crop, resize back, argmax, and the optional confidence cut."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainer.predict.authors import (
    PAD_COLOUR,
    Geometry,
    authors_predict,
    geometry,
    labels_from_embeddings,
    pad_image,
)


def test_pad_colour_is_the_imagenet_mean_rounded_to_8_bits():
    assert PAD_COLOUR == (124, 116, 104)


@pytest.mark.parametrize(
    "size, short, scaled, pads",
    [
        ((1080, 1920), 720, (720, 1280), (8, 8, 0, 0)),  # 720 -> 736: 16 rows, half above, half below
        ((480, 640), 720, (720, 960), (8, 8, 0, 0)),
        ((1920, 1080), 720, (1280, 720), (0, 0, 8, 8)),  # portrait: the width is the short edge
        ((100, 151), 100, (100, 151), (14, 14, 4, 5)),  # 151 -> 160: 9 columns, the odd one on the right
        ((99, 100), 99, (99, 100), (14, 15, 14, 14)),  # 99 -> 128: 29 rows, the odd one at the bottom
        ((33, 40), 33, (33, 40), (0, 0, 12, 12)),  # their ceil((n - 1) / 32) * 32 leaves 32k + 1 unpadded
        ((64, 64), 64, (64, 64), (0, 0, 0, 0)),
    ],
)
def test_padding_geometry(size, short, scaled, pads):
    g = geometry(*size, short)
    assert (g.scaled_h, g.scaled_w) == scaled
    assert (g.top, g.bottom, g.left, g.right) == pads
    if (g.scaled_h - 1) % 32:
        assert g.padded_h % 32 == 0


def test_long_edge_rounds_like_python_round():
    # 720 / 1000 * 1389 = 1000.08 -> 1000 ; 720 / 600 * 1000 = 1200 exactly
    assert geometry(1000, 1389, 720).scaled_w == 1000
    assert geometry(600, 1000, 720).scaled_w == 1200


def test_pad_image_centres_the_picture_on_the_mean_colour():
    g = geometry(99, 151, 99)
    image = np.full((99, 151, 3), 7, dtype=np.uint8)
    padded = pad_image(image, g)
    assert padded.shape == (128, 160, 3)
    assert (padded[g.top : g.top + 99, g.left : g.left + 151] == 7).all()
    border = np.ones(padded.shape[:2], dtype=bool)
    border[g.top : g.top + 99, g.left : g.left + 151] = False
    assert (padded[border] == PAD_COLOUR).all()
    assert g.top == 14 and g.bottom == 15 and g.left == 4 and g.right == 5


def _reference(emb, vectors, g: Geometry):
    """The same steps on whole tensors, with torch's own interpolation."""
    up = F.interpolate(emb[None], size=(g.padded_h, g.padded_w), mode="bilinear", align_corners=True)[0]
    cos = torch.einsum("chw,kc->khw", F.normalize(up, dim=0), F.normalize(torch.as_tensor(vectors), dim=1))
    prob = (cos * 100).softmax(0)[:, g.top : g.top + g.scaled_h, g.left : g.left + g.scaled_w]
    full = F.interpolate(prob[None], size=(g.height, g.width), mode="bilinear", align_corners=False)[0]
    top, arg = full.max(0)
    return arg.numpy(), top.numpy()


@pytest.mark.parametrize("size, short", [((75, 130), 50), ((150, 90), 100), ((97, 97), 97)])
def test_banded_computation_matches_whole_tensor_reference(size, short):
    g = geometry(*size, short)
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(8, g.padded_h // 4, g.padded_w // 4, generator=gen)
    vectors = torch.randn(5, 8, generator=gen).numpy()
    labels, top = labels_from_embeddings(emb, vectors, g)
    ref_labels, ref_top = _reference(emb, vectors, g)
    assert labels.shape == size
    np.testing.assert_allclose(top, ref_top, atol=1e-4)  # float32 rounding, amplified by the x100 softmax
    assert (labels == ref_labels).mean() > 0.999


def _uniform(vec, g):
    return torch.as_tensor(vec, dtype=torch.float32)[:, None, None].expand(-1, g.padded_h // 4, g.padded_w // 4)


def test_confidence_cut_marks_uncertain_pixels_255():
    g = geometry(40, 60, 40)
    vectors = np.eye(2, dtype=np.float32)
    sure, sure_top = labels_from_embeddings(_uniform([1.0, 0.0], g), vectors, g, cut=0.5)
    assert (sure == 0).all() and np.allclose(sure_top, 1.0)
    # Equal cosine with both labels: softmax gives exactly 0.5, which their `prob > 0.5` test rejects.
    tie, tie_top = labels_from_embeddings(_uniform([1.0, 1.0], g), vectors, g, cut=0.5)
    assert np.allclose(tie_top, 0.5) and (tie == 255).all()
    uncut, _ = labels_from_embeddings(_uniform([1.0, 1.0], g), vectors, g, cut=None)
    assert set(np.unique(uncut)) <= {0, 1}
    # cos 0.8 vs 0.6 after normalising [4, 3]: p = 1 / (1 + e^-20), far above the cut.
    leaning, _ = labels_from_embeddings(_uniform([4.0, 3.0], g), vectors, g, cut=0.5)
    assert (leaning == 0).all()


class _Recorder(torch.nn.Module):
    """A stride-4 'network' that remembers its input and returns a fixed embedding map."""

    def __init__(self, emb_of):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.emb_of = emb_of
        self.seen = None

    def forward(self, x):
        self.seen = x.clone()
        return self.emb_of(x)


def test_authors_predict_feeds_the_padded_normalised_image_and_returns_original_size():
    image = np.random.default_rng(0).integers(0, 100, (90, 130, 3), dtype=np.uint8)
    image[:, 65:, 0] = 255  # a red right half

    def emb_of(x):  # label 1 where the (normalised) red channel is high, else label 0
        red = F.avg_pool2d(x[:, :1], 4)
        return torch.cat([torch.ones_like(red), red], 1)

    net = _Recorder(emb_of)
    labels, top = authors_predict(net, image, np.eye(2, dtype=np.float32), short_edge=90)
    g = geometry(90, 130, 90)
    assert labels.shape == (90, 130) and top.shape == (90, 130)
    assert net.seen.shape[-2:] == (g.padded_h, g.padded_w) == (96, 160)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    pixels = (net.seen * std + mean).round()[0].permute(1, 2, 0).numpy()
    assert (pixels[: g.top] == PAD_COLOUR).all() and (pixels[:, : g.left] == PAD_COLOUR).all()
    assert (pixels[:, g.left + 130 :] == PAD_COLOUR).all()
    np.testing.assert_array_equal(pixels[g.top : g.top + 90, g.left : g.left + 130], image)
    assert (labels[:, :60] == 0).all() and (labels[:, 70:] == 1).all()


@pytest.mark.parametrize("n, window, starts", [(640, 640, [0]), (1000, 640, [0, 360]),
                                                (1500, 640, [0, 427, 854, 860]), (96, 32, [0, 22, 44, 64])])
def test_sliding_windows_cover_the_side_with_the_last_flush_at_the_end(n, window, starts):
    from trainer.predict.authors import window_starts

    assert window_starts(n, window) == starts
    covered = np.zeros(n, dtype=bool)
    for s in starts:
        covered[s : s + window] = True
    assert covered.all()


def test_authors_windows_label_a_large_image_window_by_window():
    from trainer.predict.authors import authors_multi_scale, authors_window_probs

    image = np.zeros((50, 120, 3), dtype=np.uint8)
    image[:, 60:, 0] = 255  # a red right half

    def emb_of(x):
        red = F.avg_pool2d(x[:, :1], 4)
        return torch.cat([torch.ones_like(red), red], 1)

    net = _Recorder(emb_of)
    probs = authors_window_probs(net, image, np.eye(2, dtype=np.float32), short_edge=50, window=32)
    assert probs.shape == (2, 50, 120)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    assert net.seen.shape[-2:] == (32, 32)  # the network saw windows, not the whole image
    labels = probs.argmax(0)
    assert (labels[:, :55] == 0).all() and (labels[:, 65:] == 1).all()
    both = authors_multi_scale(net, image, np.eye(2, dtype=np.float32), [40, 50], window=32)
    assert both.shape == (2, 50, 120) and (both.argmax(0)[:, 65:] == 1).all()
