"""Write scikit-learn's 8 x 8 digits (1,797 images, bundled with scikit-learn, nothing downloaded) as a folder of
labelled PNGs in torchvision's ImageFolder layout, which ``--dataset folder`` reads as it is:
``DIR/{digit}/{k:04d}.png`` (the subfolder is the label; ``--labels-csv`` also writes ``DIR/labels.csv``,
``filename,label``, the other layout it reads).  The README's "Your own data" section runs the whole pipeline on it.

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
    p.add_argument("--labels-csv", action="store_true", help="also write DIR/labels.csv (filename,label)")
    args = p.parse_args(argv)
    if args.per_class is not None and args.per_class < 1:
        p.error(f"--per-class must be >= 1, got {args.per_class}")
    if args.out.exists() and any(args.out.iterdir()):
        p.error(f"--out {args.out} exists and is not empty")
    root = make_digits_folder(args.out, per_class=args.per_class, upscale=args.upscale, labels_csv=args.labels_csv)
    n = sum(1 for _ in root.glob("*/*.png"))
    print(f"wrote {n} images in {root}/{{digit}}/" + (f" and {root / 'labels.csv'}" if args.labels_csv else ""))
    return root


if __name__ == "__main__":
    main()
