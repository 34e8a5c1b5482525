"""CUB-200-2011 with the paper's settings: AVP -> prior -> 1000 near-optimal sequences -> RAM, RAM+, PS-NOGS,
PS-H1, PS-H5, PS-HGS (all with the pretraining stage) -> results table (the paper's Table 1, CUB column).

Every stage is a :mod:`ppl_attention.pipeline` function; each is skipped when its artefact is finished, so
re-running resumes.  Every paper setting is spelled out in :class:`PaperSettings` below and in the base it shares
with celeba_hq.py (``_paper_pipeline.CommonPaperSettings``), with where it comes from ("paper" = Harvey, Teng &
Wood, arXiv:1906.05462, section 6 / appendix B; "REFERENCE" = the paper's settings as summarised in
docs/RESULTS.md and in the comments below).

    python examples/cub.py --root /data/CUB_200_2011 --out runs/cub --device cuda --vgg-weights vgg16.safetensors
    python examples/cub.py --root FIXTURE --out runs/tiny --tiny     # every size shrunk: a smoke run on the CPU

``--root`` is the official CUB_200_2011 folder (images.txt, bounding_boxes.txt, parts/, ...); images are cropped
to the bird's bounding box and resized to 128 x 128 by ppl_attention.data.

Paper settings the library's commands cannot take (left at the library's behaviour, NOT the paper's):

- the prior: the paper draws 1.5 M images from a FineGAN; ``build-prior`` indexes the dataset's own training
  images (no GAN sampling in the library), so the prior here is at most 5,120 images;
- K2 is not separate from N: the sampler returns up to N = ``--num-samples`` weighted completions, which is the
  paper's K2 = N = 100 for CUB;
- the paper excluded 43 test images that are also in ImageNet; ppl_attention.data.cub keeps the official test
  split (5,794 images);
- the paper's hard-attention training length is given only through its curves (RAM+ converges after 11,600
  iterations, PS-NOGS after 640): ``train_iterations`` below is our choice (250 epochs of 5,120 images).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ppl_attention import pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _paper_pipeline import TINY, CommonPaperSettings, boed_stages, network_options, paper_parser  # noqa: E402
from _paper_pipeline import paper_stages  # noqa: E402
from _paper_pipeline import parse_paper_args, results_table, run_folders, run_stages, shrunk  # noqa: E402
from _paper_pipeline import training_stages, write_results  # noqa: E402

EPOCH = 5120 // 64  # iterations per epoch: 5,120 training images, batch 64 (paper sec. 6)


@dataclass
class PaperSettings(CommonPaperSettings):
    # Data: bounding-box crops at 128 x 128, 32 x 32 glimpses on a grid of stride 8 (Sensor.cub(), the
    # dataset's default grid); 5120 train / 874 valid (paper sec. 6; REFERENCE "The paper's settings").
    dataset: str = "cub"
    # AVP: 200-way softmax plus the 312 binary attributes as an auxiliary output (paper app. B.1).
    avp_epochs: int = 200  # the best checkpoint came after 183 epochs (paper app. B.1)
    avp_patience: int = 200  # the paper did not stop early: it kept the best of every epoch
    avp_aux_weight: float = 0.5  # weight of the attribute head (the paper does not give one)
    # Prior: over the training crops (see docstring).
    prior_size: int = 5120
    prior_fit_samples: int = 5120
    # BOED: N = 100 Monte Carlo samples, K1 = 500 proposal draws (K2 = N = 100), 1000 sequences (paper sec. 6 /
    # REFERENCE).
    num_sequences: int = 1000
    num_samples: int = 100
    k1: int = 500
    # Image completion: likelihood std sigma_p = 80 (0..255 pixels) and a proposal tempered so that its ESS is in
    # [0.8 K1, K1] (paper app. A.3 / REFERENCE); passed to `generate --sigma/--target-ess`.
    completion_sigma: float = 80.0
    proposal_target_ess: float = 0.8
    # Hard-attention network: the first 12 layers of an ImageNet VGG as glimpse embedder, GRU hidden 1024, Adam 5e-5
    # (paper sec. 6).
    hidden: int = 1024
    glimpse_dim: int | None = None  # the library's default embedding size (the paper does not give one)
    backbone: str = "vgg16"
    backbone_layers: int = 12
    backbone_weights: str | None = None  # local torchvision VGG-16 state dict (.safetensors); never downloaded
    lr: float = 5e-5
    # Pretraining stage for every method: embedder, GRU and classifier trained with glimpse locations drawn from a
    # fixed distribution (uniform for RAM, the first-glimpse-EPE heuristic with gamma^-1 = 1 for RAM+ and all
    # others), 250 epochs, best validation accuracy kept, then frozen while the policy trains (paper app. B.2).
    pretrain_iterations: int = 250 * EPOCH
    train_iterations: int = 250 * EPOCH  # our choice (see docstring)
    num_supervised: int = 1000  # the 1000 sequences
    convergence: str = "accuracy"  # CUB: first validation accuracy within 1 % of the best (paper Table 1)
    methods: tuple[str, ...] = ("RAM", "RAM+", "PS-NOGS", "PS-H1", "PS-H5", "PS-HGS")  # paper Table 1 / app. B.3


def tiny(s: PaperSettings) -> PaperSettings:
    """Every size shrunk so the whole pipeline runs in seconds on the CPU (for tests and smoke runs)."""
    return shrunk(s, **TINY, hidden=16, glimpse_dim=16, backbone="small", backbone_weights=None, lr=1e-3)


def stages(s: PaperSettings, root: Path, out: Path, device: str, seed: int, train_extra=None):
    common = {"device": device, "seed": seed}
    data = pipeline.Dataset(s.dataset, str(root))
    seqs, figs = out / "sequences", out / "figures"
    backbone = {"backbone_weights": s.backbone_weights}
    backbone["backbone_layers"] = s.backbone_layers if s.backbone != "small" else None
    pretrain = {"pretrain": True, "pretrain_iterations": s.pretrain_iterations}
    net = network_options(s, data, best_metric="accuracy", **backbone, **pretrain, **(train_extra or {}))
    heuristic = {"pretrain_locations": "heuristic", "epe_first": seqs / "first_glimpse.json"}
    supervised = {"num_supervised": s.num_supervised}
    all_methods = {
        "RAM": {"supervision": "none", "pretrain_locations": "uniform"},
        "RAM+": {"supervision": "none", **heuristic},
        "PS-NOGS": {"supervision": "nogs", "sequences": seqs, **heuristic, **supervised},
        "PS-H1": {"supervision": "h1", **heuristic, **supervised},
        "PS-H5": {"supervision": "h5", **heuristic, **supervised},
        "PS-HGS": {"supervision": "hgs", **heuristic, **supervised},
    }
    unknown = set(s.methods) - set(all_methods)
    if unknown:
        raise ValueError(f"methods must be among {sorted(all_methods)}, got {sorted(unknown)}")
    methods = {m: all_methods[m] for m in s.methods}
    runs = run_folders(out, methods, s.seeds)
    names = ("train AVP (species + attributes)", f"generate {s.num_sequences} sequences")
    st = boed_stages(s, data, root, out, seqs, common, names, design={"target_ess": s.proposal_target_ess})
    st += training_stages(methods, runs, s.seeds, net, device, "val_greedy_acc", figs / "validation_curves.png")
    return st, runs


def main(argv=None) -> dict:
    p = paper_parser(__doc__, "CUB_200_2011", "runs/cub")
    p.add_argument("--vgg-weights", default=None, help="ImageNet VGG-16 weights (.safetensors) for the embedder")
    args = parse_paper_args(p, argv, "CUB_200_2011")
    s, st, runs = paper_stages(args, replace(PaperSettings(), backbone_weights=args.vgg_weights), tiny, stages)
    timings = run_stages(st)
    return write_results(args.out, results_table(runs, s.convergence), timings, asdict(s))


if __name__ == "__main__":
    main()
