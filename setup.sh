#!/usr/bin/env bash
# Install everything hwgen needs on Debian 12 (run as root; safe to run again), then run the demo.
#
#   ./setup.sh            install + demo
#   ./setup.sh --no-demo  install only
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(
    python3 python3-venv python3-dev      # hwgen itself, in .venv
    verilator make g++                    # RTL co-simulation
    clang-19 lld-19 llvm-19               # RISC-V Vector C: compiler, linker, llvm-objdump-19
    libc6-dev-riscv64-cross libgcc-12-dev-riscv64-cross
    qemu-user                             # qemu-riscv64 runs and counts RVV code
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
echo "setup: $(.venv/bin/hwgen --version) installed in $(pwd)/.venv"

if [ "${1:-}" != "--no-demo" ]; then
    PATH="$(pwd)/.venv/bin:$PATH" bash examples/demo.sh
fi
