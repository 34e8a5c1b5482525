"""``ppl-attention migrate DIR``: rewrite the artefacts of older formats under DIR into today's."""

from __future__ import annotations

from pathlib import Path

from ._common import add_command


def register(sub, common):
    p = add_command(sub, common, "migrate", run)
    p.add_argument("dir", type=Path, help="an artefact folder, or a folder of them")


def run(args):
    """Rewrite in place, file by file atomically, every artefact under DIR that an older version wrote: manifests
    without a dataset spec, priors that do not name their kind, two-file training checkpoints. Manifests under DIR
    that record a rewritten manifest's checksum get the new one, so migrate the folder that holds related artefacts
    together. Prints what it changed; a second run changes nothing."""
    from ..migrate import migrate

    changes = migrate(args.dir)
    for line in changes:
        print(line)
    print(f"{len(changes)} change(s) under {args.dir}" if changes else f"nothing to migrate under {args.dir}")
    return 0
