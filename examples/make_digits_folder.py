"""Write scikit-learn's 8 x 8 digits (1,797 images, bundled with scikit-learn, nothing downloaded) as a folder of
labelled PNGs -- the layout of ``--dataset folder``: ``DIR/{digit}/{k:04d}.png`` and ``DIR/labels.csv``
(``filename,label``).  The README's "Your own data" section runs the whole pipeline on it.

    python examples/make_digits_folder.py --out runs/digits                 # all 1,797 digits
    python examples/make_digits_folder.py --out runs/digits-small --per-class 20
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ppl_attention.data.fixtures import make_digits_folder


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder to write (created)")
    p.add_argument("--per-class", type=int, default=None, help="the first N images of each digit (default: all)")
    p.add_argument("--upscale", type=int, default=1, help="write the PNGs this many times larger (default: 1, 8 x 8)")
    args = p.parse_args(argv)
    if args.per_class is not None and args.per_class < 1:
        p.error(f"--per-class must be >= 1, got {args.per_class}")
    if args.out.exists() and any(args.out.iterdir()):
        p.error(f"--out {args.out} exists and is not empty")
    root = make_digits_folder(args.out, per_class=args.per_class, upscale=args.upscale)
    n = sum(1 for _ in open(root / "labels.csv")) - 1
    print(f"wrote {n} images and {root / 'labels.csv'}")
    return root


if __name__ == "__main__":
    main()
