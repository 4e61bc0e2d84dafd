#!/usr/bin/env bash
# The project's test command: installs the peers, then runs every test, including the
# interop tests against imgtool, stm32flash, stm32loader and dfu-util's tools, and the
# no_std cross builds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# Interop tests fail (instead of skipping) when a peer is missing.
export BRICKLESS_REQUIRE_PEERS=1
echo "== no_std cross builds"
for target in thumbv6m-none-eabi thumbv7em-none-eabihf thumbv8m.main-none-eabihf; do
  cargo build --locked -q --target "$target" -p brickless-image -p brickless-flash \
    -p brickless-boot -p brickless-rom -p brickless-smp --no-default-features
  # What a bootloader links: the engine with the MCUboot check and one verifier.
  cargo build --locked -q --target "$target" -p brickless-boot --no-default-features \
    --features brickless-boot/mcuboot,brickless-image/ed25519
done
echo "== firmware: every board's bootloader, the example applications, the C library"
bash scripts/firmware.sh build
bash scripts/firmware.sh check-header
echo "== signature algorithms as features (a bootloader links one verifier)"
cargo test --locked -q -p brickless-image --no-default-features --features ed25519 --test algorithm_features
echo "== tests"
cargo test --locked --workspace
echo "== Python package: the wheel built, installed in a fresh venv and tested"
# The cli's tests above built the brickless binary the Python tests run as virtual devices.
BRICKLESS_BIN="${CARGO_TARGET_DIR:-target}/debug/brickless" bash scripts/python.sh
