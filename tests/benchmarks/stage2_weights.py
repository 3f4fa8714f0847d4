"""Does a change alter default training? Train stage 2 briefly with the demo defaults on a tiny
synthetic set and save the weights; run it with two source trees and compare.

    PYTHONPATH=<other checkout>/src python tests/benchmarks/stage2_weights.py train main.pt
    PYTHONPATH=src python tests/benchmarks/stage2_weights.py train branch.pt
    python tests/benchmarks/stage2_weights.py compare main.pt branch.pt
"""
import inspect
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
import yaml

import clip_reid
from clip_reid.data.market import build_image_index
from clip_reid.data.synthetic import SyntheticConfig, generate_synthetic_market
from clip_reid.modeling import ClipSpec
from clip_reid.modeling.backbone import ClipBackbone
from clip_reid.modeling.prompt_artifacts import TextFeatures
from clip_reid.pipelines.encoder_training.nodes import train_reid_model


def main() -> None:
    if sys.argv[1:2] == ["compare"]:
        first, second = (torch.load(path, weights_only=True) for path in sys.argv[2:4])
        same = first.keys() == second.keys() and all(
            torch.equal(first[k], second[k]) for k in first
        )
        print("identical weights" if same else "the weights differ")
        sys.exit(0 if same else 1)
    repo = Path(clip_reid.__file__).parents[2]
    params = {}
    for name in ("model", "encoder_training"):
        params |= yaml.safe_load((repo / "conf/base" / f"parameters_{name}.yml").read_text())
    tmp = Path(tempfile.mkdtemp())
    generate_synthetic_market(tmp / "demo", SyntheticConfig(seed=4, num_train_ids=8, num_test_ids=6,
                                                           num_distractors=4, num_junk=1))
    index, _ = build_image_index(tmp / "demo")
    params["encoder_training"].update(max_epochs=2, batch_size=8, num_instances=2,
                                      work_dir=str(tmp / "work"))
    params["model"]["image_size"] = [64, 32]
    trainer = {"accelerator": "cpu", "devices": 1, "precision": "32-true", "deterministic": True,
               "enable_progress_bar": False, "log_every_n_steps": 1}
    text = TextFeatures.of_identities(
        torch.randn(8, 128, generator=torch.Generator().manual_seed(0)))
    backbone = ClipBackbone.of(ClipSpec(**params["model"]["clip"]))
    args = [index, text, backbone]
    if "image_captions" in inspect.signature(train_reid_model).parameters:
        args.append(pd.DataFrame(columns=["path", "pid", "caption", "source"]))
    out = train_reid_model(*args, params["model"], params["encoder_training"], trainer, 0)
    if hasattr(out, "to_state"):  # a ReidCheckpoint; trees before it returned the state dict
        out = out.to_state()
    torch.save(out["state_dict"], sys.argv[2])
    print(clip_reid.__file__, out["final_metrics"].get("loss_epoch"), sorted(out))


if __name__ == "__main__":
    main()
