import pytest
import torch
import torch.nn.functional as F

from clip_reid.modeling import ClipSpec, ReidImageEncoder, load_clip, resize_grid_embedding


@pytest.fixture(scope="module")
def rn50():
    return load_clip(ClipSpec("RN50"))


@pytest.fixture(scope="module")
def vit_b16():
    return load_clip(ClipSpec("ViT-B-16"))


def _features(clip, size=(256, 128), stride=16, cameras=0):
    encoder = ReidImageEncoder(clip.visual, size, stride, num_cameras=cameras, sie_coef=3.0)
    camids = torch.tensor([0, 1]) if cameras else None
    with torch.no_grad():
        return encoder, encoder(torch.randn(2, 3, *size), camids)


def test_rn50_layer4_stride1_and_feature_shapes(rn50):
    encoder, features = _features(load_clip(ClipSpec("RN50")))
    assert encoder.grid == (16, 8)
    assert [tuple(f.shape) for f in features] == [(2, 1024), (2, 2048), (2, 1024)]
    assert encoder.visual.attnpool.positional_embedding.shape == (1 + 16 * 8, 2048)


def test_vit_b16_shapes_and_overlapping_patches(vit_b16):
    encoder, features = _features(load_clip(ClipSpec("ViT-B-16")))
    assert encoder.grid == (16, 8)
    assert [tuple(f.shape) for f in features] == [(2, 768), (2, 768), (2, 512)]
    encoder, features = _features(load_clip(ClipSpec("ViT-B-16")), stride=12, cameras=6)
    assert encoder.grid == (21, 10)
    assert encoder.visual.positional_embedding.shape == (1 + 21 * 10, 768)
    assert tuple(features.projection.shape) == (2, 512)


def test_camera_embedding_changes_only_with_camera():
    clip = load_clip(ClipSpec("tiny-vit"))
    encoder = ReidImageEncoder(clip.visual, (128, 64), 16, num_cameras=3, sie_coef=3.0).eval()
    images = torch.randn(1, 3, 128, 64).repeat(2, 1, 1, 1)
    with torch.no_grad():
        same = encoder(images, torch.tensor([1, 1])).final
        other = encoder(images, torch.tensor([0, 2])).final
    assert torch.allclose(same[0], same[1])
    assert not torch.allclose(other[0], other[1])
    with pytest.raises(ValueError, match="pass camids"):
        encoder(images)


def test_resize_equals_direct_bilinear_interpolation_and_keeps_class_row():
    embedding = torch.randn(1 + 7 * 7, 32)
    resized = resize_grid_embedding(embedding, (16, 8))
    grid = embedding[1:].reshape(7, 7, 32).permute(2, 0, 1)[None]
    direct = F.interpolate(grid, size=(16, 8), mode="bilinear", align_corners=False)
    assert torch.equal(resized[0], embedding[0])
    assert torch.allclose(resized[1:], direct[0].permute(1, 2, 0).reshape(128, 32))


def test_unsupported_tower_is_named():
    with pytest.raises(TypeError, match="Unsupported CLIP image tower Linear"):
        ReidImageEncoder(torch.nn.Linear(2, 2), (256, 128), 16, num_cameras=0, sie_coef=3.0)
