import lightning as L
import pytest
import torch
from builders import write_crop

from clip_reid.data.transforms import build_train_transform
from clip_reid.modeling import ClipSpec, load_clip, tokenizer_for
from clip_reid.modeling.caption_finetune import (
    PAIR_AUGMENTATION,
    CaptionFinetuneModule,
    CaptionFinetuneOptimizer,
    ImageCaptionPairs,
    native_input_size,
)


@pytest.mark.parametrize("arch, size", [("tiny-rn", (224, 224)), ("tiny-vit", (224, 224))])
def test_native_input_size(arch, size):
    assert native_input_size(load_clip(ClipSpec(arch=arch))) == size


def test_one_epoch_moves_both_towers_with_their_own_learning_rates(tmp_path):
    clip = load_clip(ClipSpec(arch="tiny-rn")).train()
    before = {k: v.clone() for k, v in clip.state_dict().items()}
    paths = []
    for i in range(4):
        paths.append(str(tmp_path / f"{i}.jpg"))
        write_crop(tmp_path / f"{i}.jpg", seed=i)
    captions = ["A man in red.", "A woman in blue.", "A man in red.", "A child."]
    tokens = tokenizer_for("tiny-rn")(captions)
    transform = build_train_transform(native_input_size(clip), (0.5,) * 3, (0.5,) * 3,
                                      **PAIR_AUGMENTATION)
    dataset = ImageCaptionPairs(paths, tokens, torch.tensor([0, 1, 0, 2]), transform)
    optim = CaptionFinetuneOptimizer(visual_lr=1e-3, text_lr=1e-4)
    module = CaptionFinetuneModule(clip, optim, max_epochs=1)
    groups = {g["name"]: g for g in module.configure_optimizers()["optimizer"].param_groups}
    assert groups["visual"]["lr"] == pytest.approx(1e-3 * 0.01)  # cosine floor after 1 epoch
    assert groups["text_no_decay"]["weight_decay"] == 0.0
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, torch.utils.data.DataLoader(dataset, batch_size=4))
    after = clip.state_dict()
    assert not torch.equal(after["token_embedding.weight"], before["token_embedding.weight"])
    assert not torch.equal(after["visual.conv1.weight"], before["visual.conv1.weight"])
    assert torch.equal(after["logit_scale"], before["logit_scale"])  # temperature is fixed
