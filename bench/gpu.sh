#!/usr/bin/env bash
# Everything nnspec's CUDA path needs proven, in one short run on a machine with an NVIDIA GPU:
#   1. installs the CUDA build of onnxruntime from wheel chunks carried in .whl/ (a GPU machine
#      reaches no package registry), unless a working one is there already;
#   2. finds the CUDA 13 / cuDNN 9 libraries present (NVIDIA's pip packages, PyTorch's) for it;
#   3. runs tests/test_cuda.py: every layer's forward and gradient against the CPU provider, the
#      whole training step on the CUDA provider, parameters kept on the device between steps;
#   4. runs bench/compare.py on the GPU (nnspec against PyTorch eager on CUDA) and prints its table.
# Where CUDA cannot start, it says why, skips steps 3-4 and exits 0.
#
#   bash bench/gpu.sh            # the whole run (under 8 minutes on one GPU)
#   bash bench/gpu.sh --check    # a smoke pass for CPU-only machines: no installs, a dry run of the
#                                # CUDA tests' harness on the CPU provider, the CUDA parts skipped
# Environment: PYTHON (default python3), NNSPEC_WHEELS (default .whl).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${NNSPEC_WHEELS:-.whl}
CHECK=0
[[ "${1:-}" == "--check" ]] && CHECK=1
say() { echo "gpu.sh: $*"; }

cuda_probe() {  # prints "True <why>" or "False <why>"
  "$PYTHON" - <<'EOF'
from nnspec.backends.onnx.runtime import cuda_status
usable, why = cuda_status()
print(usable, why)
EOF
}

# 1. The onnxruntime-gpu wheel, reassembled from its chunks (split -b 60M), installed without deps.
if (( ! CHECK )); then
  if ! "$PYTHON" -c "import nnspec" 2>/dev/null; then
    say "installing nnspec from this checkout (dependencies from $WHEELS/ or already installed)"
    "$PYTHON" -m pip install -q --no-index --find-links "$WHEELS" --no-build-isolation -e . \
      || "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e .
  fi
  shopt -s nullglob
  parts=("$WHEELS"/onnxruntime_gpu-*.whl.part*)
  if (( ${#parts[@]} )) && ! "$PYTHON" -c "import onnxruntime as o; assert 'CUDAExecutionProvider' in o.get_available_providers()" 2>/dev/null; then
    name=$(basename "${parts[0]}"); name=${name%.part*}
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    cat "${parts[@]}" > "$tmp/$name"  # the glob sorts part aa, ab, ... in order
    say "installing $name"
    "$PYTHON" -m pip uninstall -q -y onnxruntime onnxruntime-gpu >/dev/null 2>&1 || true
    "$PYTHON" -m pip install -q --no-deps "$tmp/$name"
  fi
fi

# 2. CUDA and cuDNN libraries from NVIDIA's pip packages (nvidia/*/lib) wherever Python keeps them.
libs=$("$PYTHON" - <<'EOF'
import glob, os, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()] + sys.path
found = []
for root in roots:
    for lib in sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib"))):
        if lib not in found:
            found.append(lib)
print(":".join(found))
EOF
)
if [[ -n "$libs" ]]; then
  export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  say "CUDA libraries from $(echo "$libs" | tr ':' '\n' | wc -l) NVIDIA package folder(s)"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

read -r usable why <<<"$(cuda_probe)"
if [[ "$usable" != "True" ]] || (( CHECK )); then
  [[ "$usable" == "True" ]] && why="--check asks for the CPU-only smoke pass" || why="CUDA cannot start: $why"
  say "skipping the CUDA tests and the GPU comparison ($why)"
  if (( CHECK )); then
    say "smoke pass: the CUDA tests' harness on the CPU provider"
    NNSPEC_TEST_DEVICE=cpu "$PYTHON" -m pytest -p no:cacheprovider tests/test_cuda.py \
      -k "dense_gelu or conv2d_valid or parameters_stay" 2>&1 | tail -n 1
  fi
  say "done"
  exit 0
fi
say "CUDA provider available ($why)"

# 3. Correctness on the GPU first: a table from a wrong step would mean nothing.
"$PYTHON" -m pytest -p no:cacheprovider tests/test_cuda.py

# 4. Speed: nnspec against PyTorch eager on the same GPU (Keras needs TensorFlow's GPU build: not here).
"$PYTHON" bench/compare.py --device cuda --repeats 3 --models mlp,cnn,resnet,lstm,lstm2x128
say "done"
