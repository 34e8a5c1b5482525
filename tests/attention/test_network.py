import pytest
import torch
import torch.nn.functional as F

from ppl_attention.attention.network import HardAttentionNet, NetworkConfig, classifier_flops, flops_per_glimpse
from ppl_attention.sensor import Sensor, NO_GLIMPSE

GRID = Sensor(12, 4, stride=4)  # 9 locations


def small_net(**kw):
    return HardAttentionNet(GRID, 3, 1, NetworkConfig(hidden=16, glimpse_dim=8, **kw))


def test_rollout_shapes_and_first_glimpse_is_image_independent():
    net = small_net()
    images = torch.rand(7, 1, 12, 12)
    ro = net(images, 4, policy="greedy")
    assert ro.locations.shape == (7, 4) and ro.logits.shape == (7, 4, 3)
    assert ro.log_probs.shape == ro.entropy.shape == ro.baselines.shape == ro.gains.shape == (7, 4)
    assert len(set(ro.locations[:, 0].tolist())) == 1  # chosen from the learned initial state only
    assert bool((ro.log_probs <= 0).all()) and bool((ro.entropy <= torch.log(torch.tensor(9.0)) + 1e-5).all())


def test_forced_locations_are_taken_and_scored_by_the_policy():
    net = small_net()
    images = torch.rand(3, 1, 12, 12)
    forced = torch.tensor([[0, 8], [NO_GLIMPSE, NO_GLIMPSE], [5, NO_GLIMPSE]])
    ro = net(images, 2, policy="greedy", forced=forced)
    free = net(images, 2, policy="greedy")
    assert ro.locations[0].tolist() == [0, 8]
    assert ro.locations[1].tolist() == free.locations[1].tolist()
    assert ro.locations[2, 0] == 5
    # The log-probability of the first forced target under the (image-independent) first policy.
    log_pi0 = F.log_softmax(net.policy(net.h0.detach()[None]), -1)[0]
    assert torch.allclose(ro.log_probs[0, 0], log_pi0[0]) and torch.allclose(ro.log_probs[2, 0], log_pi0[5])


def test_network_only_sees_its_glimpses():
    """Changing pixels outside every glimpse taken leaves all outputs unchanged; changing one inside does not."""
    net = small_net()
    images = torch.rand(2, 1, 12, 12)
    forced = torch.tensor([[0, 4], [8, 0]])
    ro = net(images, 2, policy="greedy", forced=forced)
    seen = GRID.mask(forced)
    other = torch.where(seen.bool(), images, torch.rand(2, 1, 12, 12))
    ro2 = net(other, 2, policy="greedy", forced=forced)
    assert torch.equal(ro.logits, ro2.logits)
    inside = images.clone()
    inside[0, 0, 0, 0] += 1.0  # location 0 covers pixel (0, 0)
    assert not torch.equal(net(inside, 2, policy="greedy", forced=forced).logits[0], ro.logits[0])


def test_policy_is_computed_from_the_detached_state():
    net = small_net()
    ro = net(torch.rand(4, 1, 12, 12), 3, policy="sample", generator=torch.Generator().manual_seed(0))
    ro.log_probs.sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in net.trunk_parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.policy.parameters())


def test_sampling_is_reproducible_with_a_generator():
    net = small_net()
    images = torch.rand(16, 1, 12, 12)
    a = net(images, 3, generator=torch.Generator().manual_seed(3)).locations
    b = net(images, 3, generator=torch.Generator().manual_seed(3)).locations
    assert torch.equal(a, b)


def test_fixed_distribution_draws_only_its_support():
    net = small_net()
    probs = torch.zeros(9)
    probs[[2, 7]] = 0.5
    ro = net(
        torch.rand(50, 1, 12, 12), 3, policy="fixed", fixed_probs=probs, generator=torch.Generator().manual_seed(0)
    )
    assert set(ro.locations.flatten().tolist()) == {2, 7}


def test_config_round_trip_rebuilds_the_same_network():
    net = HardAttentionNet(
        GRID, 3, 1, NetworkConfig(hidden=16, glimpse_dim=8, location_embedding="mlp"), mean=[0.1], std=[0.2]
    )
    clone = HardAttentionNet.from_config(net.to_config())
    clone.load_state_dict(net.state_dict())
    images = torch.rand(2, 1, 12, 12)
    assert torch.equal(net(images, 2, policy="greedy").logits, clone(images, 2, policy="greedy").logits)


def test_flops_are_counted_exactly():
    H, D, K, L = 16, 8, 3, 9
    net = small_net()
    h, w = GRID.glimpse_size
    conv = 2 * 1 * 16 * 9 * h * w + 2 * 16 * 32 * 9 * (h // 2) * (w // 2)
    linear = 2 * 32 * (h // 4) * (w // 4) * D
    gru = 2 * 3 * (D * H + H * H)
    policy = 2 * (H * 32 + 32 * L)
    stop = 2 * (H * 32 + 32 * 1)
    assert flops_per_glimpse(net) == conv + linear + gru + policy + stop
    assert classifier_flops(net) == 2 * H * K


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(glimpses=0), "glimpses"),
        (dict(glimpses=2, policy="best"), "policy"),
        (dict(glimpses=2, forced=torch.zeros(2, 3, dtype=torch.long)), "`forced` must have shape"),
        (dict(glimpses=2, forced=torch.full((2, 2), 9)), "forced locations"),
        (dict(glimpses=2, policy="fixed"), "fixed_probs"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_net()(torch.rand(2, 1, 12, 12), **kwargs)


def test_bad_images_and_normalisation_are_refused():
    with pytest.raises(ValueError, match="`images` must have shape"):
        small_net()(torch.rand(2, 3, 12, 12), 2)
    with pytest.raises(ValueError, match="mean and std"):
        HardAttentionNet(GRID, 3, 1, NetworkConfig(hidden=8), mean=[0.1, 0.2], std=[1.0])


def test_torchvision_backbone_for_rgb_glimpses_and_local_weights_only(tmp_path):
    grid = Sensor(64, 32, stride=16)
    net = HardAttentionNet(
        grid, 5, 3, NetworkConfig(hidden=16, glimpse_dim=8, backbone="mobilenet_v2", backbone_layers=3)
    )
    ro = net(torch.rand(2, 3, 64, 64), 2, policy="greedy")
    assert ro.logits.shape == (2, 2, 5)
    with pytest.raises(FileNotFoundError, match="backbone_weights"):
        HardAttentionNet(
            grid,
            5,
            3,
            NetworkConfig(
                backbone="mobilenet_v2", backbone_layers=3, backbone_weights=str(tmp_path / "missing.safetensors")
            ),
        )
