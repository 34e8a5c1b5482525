"""``ppl-attention migrate DIR``: rewrite the artefacts of older formats under DIR into today's."""

from __future__ import annotations

from pathlib import Path


def register(sub, common):
    p = sub.add_parser(
        "migrate",
        parents=[common],
        help="rewrite artefacts of older formats into today's",
        description="Rewrite in place, file by file atomically, every artefact under DIR that an "
        "older version wrote: manifests without a dataset spec, priors that do not name their kind, "
        "two-file training checkpoints. Manifests under DIR that record a rewritten manifest's "
        "checksum get the new one, so migrate the folder that holds related artefacts together. "
        "Prints what it changed; a second run changes nothing.",
    )
    p.add_argument("dir", type=Path, help="an artefact folder, or a folder of them")
    p.set_defaults(func=run)


def run(args):
    from ..migrate import migrate

    changes = migrate(args.dir)
    for line in changes:
        print(line)
    print(f"{len(changes)} change(s) under {args.dir}" if changes else f"nothing to migrate under {args.dir}")
    return 0
