"""How often does an EPE-map network's top-k hold the exhaustive search's argmin?  (What caps the hybrid search.)

For every record of an exhaustive sequence store of held-out images and every step after the first, the network
predicts the map from the store's own prefix of glimpses; the best reference EPE among the network's k best allowed
locations gives the regret of an ideal hybrid search with ``top=k`` (one that scores its k candidates exactly on the
reference's completions).  Prints JSON: per step and k, mean relative regret and the fraction of steps whose
argmin is in the top k.

    python benchmarks/amortised_topk.py --store runs16/ex-test --epe-net runs16/netB --avp AVP
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch


def main():
    from ppl_attention.data.spec import DatasetSpec, recorded_spec
    from ppl_attention.design.amortised import AmortisedMap, allowed_mask, load_epe_net
    from ppl_attention.design.store import SequenceStore
    from ppl_attention.posterior import load_avp

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--store", type=Path, required=True, help="exhaustive sequence store of held-out images")
    ap.add_argument("--epe-net", type=Path, required=True)
    ap.add_argument("--avp", type=Path, required=True)
    ap.add_argument("--top", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    store = SequenceStore.open(args.store)
    predictor = AmortisedMap(load_epe_net(args.epe_net), load_avp(args.avp).eval())
    _, spec = recorded_spec(args.store)
    data = DatasetSpec.from_dict(spec).load(store.config.get("split", "train"))
    idx = store.indices()
    images = torch.stack([data[i]["image"] for i in idx])
    locations = torch.tensor([store.record(i)["locations"] for i in idx])
    maps = torch.stack([store.epe_maps(i) for i in idx])
    L = store.grid.num_locations
    out = {"images": len(idx), "steps": {}}
    for t in range(1, store.T):
        observed = locations[:, :t]
        allowed = allowed_mask(observed, L)
        pred = predictor(images, observed).masked_fill(~allowed, math.inf)
        ref = maps[:, t].masked_fill(~allowed, math.inf)
        low = ref.min(1).values
        order = pred.argsort(1)
        out["steps"][str(t + 1)] = {
            str(k): {
                "mean_regret": float(((ref.gather(1, order[:, :k]).min(1).values - low) / low).mean()),
                "argmin_in_top": float((ref.gather(1, order[:, :k]).min(1).values == low).double().mean()),
            }
            for k in args.top
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
