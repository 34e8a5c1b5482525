"""CelebA-HQ with the paper's settings: AVP -> prior -> 600 near-optimal sequences for one attribute -> RAM, RAM+
and PS-NOGS -> results table (the paper's Fig. 5 / Table 1 for one attribute).

Every stage is a :mod:`ppl_attention.pipeline` function; each is skipped when its artefact is finished, so
re-running resumes.  Every paper setting is spelled out in :class:`PaperSettings` below and in the base it shares
with cub.py (``_paper_pipeline.CommonPaperSettings``), with where it comes from ("paper" = Harvey, Teng & Wood,
arXiv:1906.05462, section 6 / appendix B; "REFERENCE" = the paper's settings as summarised in docs/RESULTS.md and
in the comments below).

    python examples/celeba_hq.py --root /data/celeba-hq --out runs/celeba --device cuda --attribute 20
    python examples/celeba_hq.py --root FIXTURE --out runs/tiny --tiny     # every size shrunk: a smoke run on the CPU

``--root`` holds ``{i:06d}.png`` + ``annotations.txt`` (or the CelebAMask-HQ layout), see ppl_attention.data.

Paper settings the library's commands cannot take (left at the library's behaviour, NOT the paper's):

- the prior: the paper draws 1.5 M images from a StyleGAN; ``build-prior`` indexes the dataset's own training
  images (no GAN sampling in the library), so the prior here is at most 27,000 images;
- K2 is not separate from N: the sampler returns up to N = ``--num-samples`` weighted completions per step, which
  is the paper's K2 = N = 200 for CelebA-HQ;
- the AVP is trained on all 27,000 training images; the paper excluded the 600 designed images (appendix B.1);
- RAM+ (pretraining with the first-glimpse-EPE heuristic, paper app. B.2) is the paper's CUB baseline; its CelebA-HQ
  results compare RAM and PS-NOGS only, so the RAM+ row here is an addition;
- the number of hard-attention training iterations is not given in the paper: ``train_iterations`` below is our
  choice (about twice RAM's mean convergence time, 24,000).
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


@dataclass
class PaperSettings(CommonPaperSettings):
    # Data: 224 x 224, 16 x 16 glimpses, 50 x 50 grid (Sensor.celeba_hq(), the dataset's default grid);
    # splits 27000 / 500 / 2500 by image index (paper sec. 6; REFERENCE "The paper's settings").
    dataset: str = "celeba-hq"
    attribute: int = 20  # 0..39 in alphabetical CelebA order; 20 = Male (REFERENCE conventions)
    # AVP: multilabel Bernoulli over all 40 attributes (paper app. B.1).
    avp_epochs: int = 500  # the best checkpoint came after 458 epochs (paper app. B.1)
    avp_patience: int = 500  # the paper did not stop early: it kept the best of every epoch
    # Prior: the database is the training split (see docstring).
    prior_size: int = 27_000
    prior_fit_samples: int = 20_000
    prior_shift: int = 0  # paper A.3.3 sums likelihoods over nearby shifts (size not given): set > 0
    # BOED: N = 200 Monte Carlo samples, K1 = 1000 proposal draws (K2 = N = 200) over all 2,500 locations, 600
    # sequences on training images 0-599 (paper sec. 6 / REFERENCE).
    num_sequences: int = 600
    num_samples: int = 200
    k1: int = 1000
    # Image completion likelihood: Gaussian std 5, 10, 20, 40 (0..255 pixels) after 1, 2, 3, 4 glimpses, each
    # glimpse marginalised over small shifts (paper app. A.3 / REFERENCE); passed to `generate --sigma/--shift`.
    completion_sigma: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0)
    # Hard-attention network: GRU hidden 64, small CNN glimpse embedder (conv3x3(16) - conv3x3 s2 (32) - maxpool -
    # linear 64), Adam 3e-4 (paper sec. 6).
    hidden: int = 64
    glimpse_dim: int = 64
    backbone: str = "small"
    lr: float = 3e-4
    train_iterations: int = 50_000  # our choice (not in the paper): ~2x RAM's 24,000 to convergence
    num_supervised: int = 600  # the 600 sequences
    convergence: str = "loss"  # CelebA-HQ: first validation CE within 0.01 of the best (paper Fig. 5)
    # RAM+ for comparison: pretraining with the first-glimpse EPE heuristic (gamma^-1 = 1, paper app. B.2).
    pretrain_iterations: int = 1000


def tiny(s: PaperSettings) -> PaperSettings:
    """Every size shrunk so the whole pipeline runs in seconds on the CPU (for tests and smoke runs)."""
    return shrunk(s, **TINY)


def stages(s: PaperSettings, root: Path, out: Path, device: str, seed: int, avp_extra=None, train_extra=None):
    common = {"device": device, "seed": seed}
    data = pipeline.Dataset(s.dataset, str(root))
    seqs, figs = out / f"sequences-attr{s.attribute}", out / "figures"
    net = network_options(s, data, attribute=s.attribute, best_metric="loss", **(train_extra or {}))
    methods = {
        "RAM": {"supervision": "none"},
        "RAM+": {
            "supervision": "none",
            "pretrain": True,
            "pretrain_locations": "heuristic",
            "epe_first": seqs / "first_glimpse.json",
            "pretrain_iterations": s.pretrain_iterations,
        },
        "PS-NOGS": {"supervision": "nogs", "sequences": seqs, "num_supervised": s.num_supervised},
    }
    runs = run_folders(out, methods, s.seeds, f"-attr{s.attribute}")
    names = ("train AVP (multilabel, 40 attributes)", f"generate {s.num_sequences} sequences (attribute {s.attribute})")
    shift = {"shift": s.prior_shift}
    extra = {"avp": avp_extra or {}, "prior": shift, "design": {"task": s.attribute, **shift}}
    st = boed_stages(s, data, root, out, seqs, common, names, **extra)
    st += training_stages(methods, runs, s.seeds, net, device, "val_greedy_ce", figs / "validation_curves.png")
    return st, runs


def main(argv=None) -> dict:
    p = paper_parser(__doc__, "CelebA-HQ", "runs/celeba-hq")
    p.add_argument("--attribute", type=int, default=20, help="CelebA attribute 0..39 (default 20 = Male)")
    args = parse_paper_args(p, argv, "the CelebA-HQ images")
    if not 0 <= args.attribute < 40:
        raise ValueError(f"--attribute must be in 0..39, got {args.attribute}")
    s, st, runs = paper_stages(args, replace(PaperSettings(), attribute=args.attribute), tiny, stages)
    timings = run_stages(st)
    return write_results(args.out, results_table(runs, s.convergence), timings, asdict(s))


if __name__ == "__main__":
    main()
