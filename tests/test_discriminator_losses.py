"""VGG-style discriminator, VGG19 feature extractor, and the GAN-stage losses."""

import math

import pytest
import torch
import torch.nn.functional as F

from spsagan.losses import (
    PerceptualLoss,
    pixel_l1_loss,
    ragan_discriminator_loss,
    ragan_generator_loss,
)
from spsagan.models.discriminator import VGGStyleDiscriminator
from spsagan.models.vgg import VGG19FeatureExtractor, layer_names

torch.set_num_threads(1)


def _discriminator_param_count(nf, side):
    """conv0_0 (bias), then bias-free convs with BN (2 params per channel), then the two linears."""
    total = 3 * nf * 9 + nf + nf * nf * 16 + 2 * nf
    chans = [nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf]
    for s in range(1, 5):
        total += chans[s - 1] * chans[s] * 9 + 2 * chans[s] + chans[s] * chans[s] * 16 + 2 * chans[s]
    return total + (8 * nf * side * side * 100 + 100) + (100 + 1)


def test_discriminator_sizes_and_names():
    d96 = VGGStyleDiscriminator()
    assert d96.linear1.in_features == 4608
    assert sum(p.numel() for p in d96.parameters()) == _discriminator_param_count(64, 3) == 14_141_001
    d128 = VGGStyleDiscriminator(input_size=128)
    assert sum(p.numel() for p in d128.parameters()) == _discriminator_param_count(64, 4)
    basicsr_names = {
        "conv0_0.weight",
        "conv0_0.bias",
        "conv0_1.weight",
        "bn0_1.weight",
        "bn0_1.bias",
        "bn0_1.running_mean",
        "bn0_1.running_var",
        "bn0_1.num_batches_tracked",
        "linear1.weight",
        "linear1.bias",
        "linear2.weight",
        "linear2.bias",
    }
    for s in range(1, 5):
        for half in (0, 1):
            basicsr_names |= {f"conv{s}_{half}.weight"} | {
                f"bn{s}_{half}.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
            }
    assert set(d128.state_dict()) == basicsr_names


def test_discriminator_forward_and_input_check():
    d = VGGStyleDiscriminator(num_feat=8, input_size=96)
    logits = d(torch.rand(3, 3, 96, 96))
    assert logits.shape == (3, 1)
    logits.sum().backward()
    assert all(p.grad is not None for p in d.parameters())
    with pytest.raises(ValueError, match="96, 96"):
        d(torch.rand(1, 3, 128, 128))
    with pytest.raises(ValueError, match="input_size"):
        VGGStyleDiscriminator(input_size=64)


def test_vgg_layer_indices_follow_torchvision():
    names = layer_names()
    assert len(names) == 37 and names.index("conv5_4") == 34 and names[35] == "relu5_4"
    assert names.index("conv1_1") == 0 and names[4] == "pool1" and names.index("conv2_1") == 5
    assert len(VGG19FeatureExtractor().features) == 35


def _torchvision_state(seed=0):
    """A random state dict in torchvision's vgg19 file format (features.N.*, classifier.*)."""
    gen = torch.Generator().manual_seed(seed)
    cfg = [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ]
    state, idx, cin = {}, 0, 3
    for item in cfg:
        if item == "M":
            idx += 1
            continue
        state[f"features.{idx}.weight"] = torch.randn(item, cin, 3, 3, generator=gen) * (2 / (9 * cin)) ** 0.5
        state[f"features.{idx}.bias"] = torch.randn(item, generator=gen) * 0.01
        idx, cin = idx + 2, item
    state["classifier.0.weight"] = torch.zeros(4, 8)  # present in the real file, ignored
    return state


def _reference_features(state, img, last=34):
    """Literal VGG19 up to features[last] on ImageNet-normalised input."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (img - mean) / std
    for i, name in enumerate(layer_names()[: last + 1]):
        if name.startswith("conv"):
            x = F.conv2d(x, state[f"features.{i}.weight"], state[f"features.{i}.bias"], padding=1)
        elif name.startswith("relu"):
            x = F.relu(x)
        else:
            x = F.max_pool2d(x, 2)
    return x


def test_vgg_loads_torchvision_format_and_matches_reference(tmp_path):
    state = _torchvision_state()
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    vgg = VGG19FeatureExtractor(weights=path)
    assert vgg.weights_label == "vgg19-dcbb9e9d"
    assert torch.equal(vgg.features[34].weight, state["features.34.weight"])
    img = torch.rand(2, 3, 32, 32, requires_grad=True)
    feats = vgg(img)
    assert feats.shape == (2, 512, 2, 2)
    assert torch.allclose(feats, _reference_features(state, img), rtol=1e-4, atol=1e-5)
    assert (feats < 0).any()  # conv5_4 before the ReLU
    # Frozen: no weight gradients, stays in eval mode, but the input gets a gradient.
    feats.sum().backward()
    assert img.grad is not None and all(not p.requires_grad for p in vgg.parameters())
    assert not vgg.train().training


def test_vgg_bad_weight_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        VGG19FeatureExtractor(weights=tmp_path / "nope.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match="wrong.pth: not torchvision's VGG19"):
        VGG19FeatureExtractor(weights=wrong)
    with pytest.raises(ValueError, match="unknown VGG19 layer"):
        VGG19FeatureExtractor(layer="conv6_1")


def test_vgg_random_init_is_seeded_and_labelled():
    a, b, c = (
        VGG19FeatureExtractor(seed=3),
        VGG19FeatureExtractor(seed=3),
        VGG19FeatureExtractor(seed=4),
    )
    assert a.weights_label == "vgg19-random-seed3"
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)


def _bce_literal(logit, target):
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_ragan_losses_match_literal_formulas():
    real = torch.tensor([[1.5], [-0.3], [0.8]])
    fake = torch.tensor([[-0.7], [0.2], [-1.1]])
    mr, mf = real.mean().item(), fake.mean().item()
    r, f = real.flatten().tolist(), fake.flatten().tolist()
    n = len(r)
    d_ref = 0.5 * sum(_bce_literal(x - mf, 1) for x in r) / n + 0.5 * sum(_bce_literal(x - mr, 0) for x in f) / n
    g_ref = 0.5 * sum(_bce_literal(x - mf, 0) for x in r) / n + 0.5 * sum(_bce_literal(x - mr, 1) for x in f) / n
    assert math.isclose(ragan_discriminator_loss(real, fake).item(), d_ref, rel_tol=1e-6)
    assert math.isclose(ragan_generator_loss(real, fake).item(), g_ref, rel_tol=1e-6)
    # The generator's loss is the discriminator's with the roles of real and fake swapped.
    assert math.isclose(
        ragan_generator_loss(real, fake).item(),
        ragan_discriminator_loss(fake, real).item(),
        rel_tol=1e-6,
    )
    # A discriminator that separates real from fake well has a low loss, the generator a high one.
    assert ragan_discriminator_loss(real + 5, fake - 5) < 0.01 < 5 < ragan_generator_loss(real + 5, fake - 5)


def test_ragan_gradients_follow_basicsr_two_pass_form():
    real = torch.tensor([[1.5], [-0.3], [0.8]], requires_grad=True)
    fake = torch.tensor([[-0.7], [0.2], [-1.1]], requires_grad=True)
    ragan_discriminator_loss(real, fake, detach_means=True).backward()
    # BasicSR: backward of 0.5 BCE(real - mean(fake).detach(), 1),
    # then of 0.5 BCE(fake - mean(real).detach(), 0).
    r2, f2 = real.detach().clone().requires_grad_(True), fake.detach().clone().requires_grad_(True)
    ones, zeros = torch.ones(3, 1), torch.zeros(3, 1)
    (0.5 * F.binary_cross_entropy_with_logits(r2 - f2.detach().mean(), ones)).backward()
    (0.5 * F.binary_cross_entropy_with_logits(f2 - r2.detach().mean(), zeros)).backward()
    assert torch.allclose(real.grad, r2.grad) and torch.allclose(fake.grad, f2.grad)
    # Generator loss: gradient only towards the fake logits (the real ones are constants).
    real.grad, fake.grad = None, None
    ragan_generator_loss(real, fake).backward()
    assert real.grad is None and fake.grad.abs().sum() > 0


def test_ragan_default_follows_esrgan_original_gradient_through_the_means():
    # ESRGAN's original: l_d = (BCE(real - mean(fake), 1) + BCE(fake - mean(real), 0)) / 2 in one graph,
    # so each logit also gets gradient through the other side's mean term.
    real = torch.tensor([[1.5], [-0.3], [0.8]], requires_grad=True)
    fake = torch.tensor([[-0.7], [0.2], [-1.1]], requires_grad=True)
    ragan_discriminator_loss(real, fake).backward()
    r, f = real.detach().flatten().tolist(), fake.detach().flatten().tolist()
    n, mr, mf = len(r), sum(r) / len(r), sum(f) / len(f)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    # d/dx BCE(x, t) = sigmoid(x) - t; the literal sums, differentiated by hand.
    a = [sig(x - mf) - 1 for x in r]  # real terms, target 1
    b = [sig(x - mr) for x in f]  # fake terms, target 0
    grad_real = [0.5 * (a[k] / n - sum(b) / n / n) for k in range(n)]
    grad_fake = [0.5 * (b[k] / n - sum(a) / n / n) for k in range(n)]
    assert torch.allclose(real.grad.flatten(), torch.tensor(grad_real), atol=1e-7)
    assert torch.allclose(fake.grad.flatten(), torch.tensor(grad_fake), atol=1e-7)
    # The loss value is the same either way; only the gradient differs.
    detached = ragan_discriminator_loss(real, fake, detach_means=True)
    assert math.isclose(detached.item(), ragan_discriminator_loss(real, fake).item(), rel_tol=1e-7)


def test_pixel_and_perceptual_losses():
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 3, 32, 32, generator=gen)
    sr = (gt + 0.1 * torch.randn(2, 3, 32, 32, generator=gen)).requires_grad_(True)
    assert math.isclose(pixel_l1_loss(sr, gt).item(), (sr - gt).abs().mean().item(), rel_tol=1e-6)
    vgg = VGG19FeatureExtractor(seed=0)
    loss_fn = PerceptualLoss(vgg)
    assert loss_fn(gt, gt).item() == 0
    loss = loss_fn(sr, gt)
    assert math.isclose(loss.item(), (vgg(sr) - vgg(gt)).abs().mean().item(), rel_tol=1e-5)
    loss.backward()
    assert sr.grad.abs().sum() > 0
