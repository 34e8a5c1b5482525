#!/bin/bash
# The design loop's cost per sequence, database prior vs generative prior, in one run (one after the other, the
# same settings and images), each under /usr/bin/time (wall and CPU seconds; the first-glimpse EPE included).
#   benchmarks/bench_design_priors.sh AVP DB_PRIOR GEN_PRIOR OUT_DIR [N_IMAGES]
# e.g. benchmarks/bench_design_priors.sh runs/avp-cluttered runs/prior-cluttered \
#        runs/gp-cluttered runs/design-cost 12
set -euo pipefail
AVP=$1; DB=$2; GEN=$3; OUT=$4; N=${5:-12}
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
for p in "database:$DB" "generative:$GEN"; do
  name=${p%%:*}; prior=${p#*:}
  rm -rf "$OUT/$name"
  /usr/bin/time -f "$name: $N sequences, elapsed %e s, user %U s, sys %S s" \
    python -m ppl_attention.cli generate --avp "$AVP" --prior "$prior" --search halving --precision bfloat16 \
      --split test --num-images "$N" -T 4 --num-samples 50 --out "$OUT/$name" --device cpu 2>&1 | grep -E "elapsed|error"
done
