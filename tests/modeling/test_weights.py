import hashlib
import shutil

import pytest
import torch

from clip_reid.modeling import ClipSpec, WeightsError, load_clip
from clip_reid.modeling import weights as weights_module


class _Holder(torch.nn.Module):
    """A module whose state dict is a CLIP state dict, so it can be saved as TorchScript."""

    def __init__(self, state):
        super().__init__()
        for name, tensor in state.items():
            *path, leaf = name.split(".")
            module = self
            for part in path:
                if not hasattr(module, part):
                    module.add_module(part, torch.nn.Module())
                module = getattr(module, part)
            module.register_buffer(leaf, tensor.clone())

    def forward(self, x):
        return x


def _openai_state(arch="tiny-rn", seed=3):
    state = load_clip(ClipSpec(arch, seed=seed)).state_dict()
    return state | {"input_resolution": torch.tensor(224), "context_length": torch.tensor(77),
                    "vocab_size": torch.tensor(49408)}


def _encode(model):
    torch.manual_seed(0)
    with torch.no_grad():
        return model.encode_image(torch.randn(1, 3, 224, 224))


# Writing an archive like OpenAI's needs TorchScript's writer, deprecated in torch 2.14; reading
# one is covered by the project's own filter (clip_reid.project.warning_filters).
@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.(script|save)` is deprecated:FutureWarning")
def test_openai_state_dict_and_torchscript_archive_give_the_same_model(tmp_path):
    state = _openai_state()
    plain = tmp_path / "plain.pt"
    torch.save(state, plain)
    scripted = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(_Holder(state)), str(scripted))
    from_plain = load_clip(ClipSpec("tiny-rn", weights=str(plain)))
    from_script = load_clip(ClipSpec("tiny-rn", weights=str(scripted)))
    reference = load_clip(ClipSpec("tiny-rn", seed=3))
    assert torch.allclose(_encode(from_plain), _encode(reference))
    assert torch.allclose(_encode(from_script), _encode(reference))


def test_mismatched_checkpoint_reports_keys_and_shapes(tmp_path):
    path = tmp_path / "vit.pt"
    torch.save(_openai_state("tiny-vit"), path)
    with pytest.raises(WeightsError, match=r"do not fit the model: missing \d+ .*wrong shape"):
        load_clip(ClipSpec("tiny-rn", weights=str(path)))


def test_official_weights_download_once_with_checksum(tmp_path, monkeypatch):
    source = tmp_path / "served" / "RN50.pt"
    source.parent.mkdir()
    torch.save(_openai_state(), source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    url = f"{source.parent.as_uri()}/{digest}/RN50.pt"
    (source.parent / digest).mkdir()
    shutil.copy(source, source.parent / digest / "RN50.pt")
    monkeypatch.setitem(weights_module.OPENAI_URLS, "tiny-rn", url)
    model = load_clip(ClipSpec("tiny-rn", weights="openai", cache_dir=str(tmp_path / "cache")))
    assert (tmp_path / "cache" / "RN50.pt").is_file()
    assert torch.allclose(_encode(model), _encode(load_clip(ClipSpec("tiny-rn", seed=3))))
    (source.parent / ("0" * 64)).mkdir()
    shutil.copy(source, source.parent / ("0" * 64) / "RN50.pt")
    monkeypatch.setitem(weights_module.OPENAI_URLS, "tiny-vit", url.replace(digest, "0" * 64))
    with pytest.raises(WeightsError, match="Checksum mismatch"):
        load_clip(ClipSpec("tiny-vit", weights="openai", cache_dir=str(tmp_path / "c2")))


def test_offline_official_weights_explain_manual_steps(tmp_path, monkeypatch):
    monkeypatch.setitem(weights_module.OPENAI_URLS, "tiny-rn", "http://127.0.0.1:9/x/RN50.pt")
    with pytest.raises(WeightsError, match="Offline: download .* set model.clip.weights"):
        load_clip(ClipSpec("tiny-rn", weights="openai", cache_dir=str(tmp_path)))
