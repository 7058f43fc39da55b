# Source this on a bare GPU machine, from the repository root, before running archsearch there
# (docs/GPU.md, "A bare GPU machine"):
#   . benchmarks/gpu_env.sh
# - unpacks every packed site folder in .gpu-site/ (made by ../shared/tools/gpu-site.sh fla|sweep)
#   into /tmp/site once, and puts it and the repository first on PYTHONPATH (Ray's workers inherit
#   it);
# - turns on Triton's autotune cache in $TRITON_CACHE_DIR (default /tmp/triton-cache), seeded
#   from .gpu-cache/autotune.tar when a previous machine of the same kind saved one with
#   save_autotune, so fla's kernels are tuned once, not in every trial process.
mkdir -p /tmp/site
for packed in .gpu-site/*.tar.xz; do
  [ -e "$packed" ] || continue
  done_mark="/tmp/site/.$(basename "$packed").unpacked"
  [ -e "$done_mark" ] || { tar -xJf "$packed" -C /tmp/site && touch "$done_mark"; }
done
export PYTHONPATH="/tmp/site:$PWD:$PWD/kernels${PYTHONPATH:+:$PYTHONPATH}"
# unbuffered prints: a command cut by its time limit still leaves every line it printed
export PYTHONUNBUFFERED=1
export TRITON_CACHE_AUTOTUNING=1
export TRITON_CACHE_DIR="${TRITON_CACHE_DIR:-/tmp/triton-cache}"
mkdir -p "$TRITON_CACHE_DIR"
if [ -f .gpu-cache/autotune.tar ]; then tar -xf .gpu-cache/autotune.tar -C "$TRITON_CACHE_DIR"; fi
# TileLang's built kernels (fla's GDN backward; 15-20 s each to build) and inductor's compiled
# graphs, in fixed folders every command on this machine shares, seeded from .gpu-cache/ when an
# earlier machine of the same kind saved them with save_caches (carry them only if they fit).
export TILELANG_CACHE_DIR="${TILELANG_CACHE_DIR:-/tmp/tilelang-cache}"
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/inductor-cache}"
mkdir -p "$TILELANG_CACHE_DIR" "$TORCHINDUCTOR_CACHE_DIR"
for cache in tilelang:"$TILELANG_CACHE_DIR" inductor:"$TORCHINDUCTOR_CACHE_DIR"; do
  packed=".gpu-cache/${cache%%:*}.tar.xz"
  if [ -f "$packed" ]; then tar -xJf "$packed" -C "${cache#*:}"; fi
done

# save_autotune FILE: pack the autotune choices (a few KB) to carry to the next machine.
save_autotune() {
  (cd "$TRITON_CACHE_DIR" && find . -name '*.autotune.json' | tar -cf "$1" -T -)
}

# save_caches DIR: autotune.tar, tilelang.tar.xz and inductor.tar.xz into DIR (bring them back
# under $OUT; carry what fits beside the site folders as .gpu-cache/ next time). Prints the sizes.
save_caches() {
  mkdir -p "$1"
  save_autotune "$1/autotune.tar"
  tar -I "xz -T0" -cf "$1/tilelang.tar.xz" -C "$TILELANG_CACHE_DIR" .
  tar -I "xz -T0" -cf "$1/inductor.tar.xz" -C "$TORCHINDUCTOR_CACHE_DIR" .
  ls -l "$1"
}
