#!/usr/bin/env bash
# brickless quick start: make a signing key, sign a firmware, verify it and look inside.
# Installs what it needs (scripts/install-deps.sh), builds the CLI, then works in a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."

bold="" plain=""
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
# Print each command before running it, so you can copy it.
run() { printf '$ %s\n' "$*"; "$@"; }

say "Installing tools (skipped when already there)"
bash scripts/install-deps.sh

say "Building brickless"
run cargo build --locked -q -p brickless
bin="$PWD/target/debug/brickless"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
brickless() { printf '$ brickless %s\n' "$*"; "$bin" "$@"; }

say "1. Make a signing key (keep it secret; imgtool reads it too)"
brickless keygen -t ed25519 -k signing-key.pem

say "2. A firmware to sign (stand-in: 16 KiB of random bytes)"
printf '$ head -c 16384 /dev/urandom > app.bin\n'
head -c 16384 /dev/urandom > app.bin

say "3. Sign it for a 128 KiB slot, confirmed, with anti-rollback counter (imgtool's flags)"
brickless image sign -k signing-key.pem --version 1.0.0 --header-size 0x200 --pad-header \
  --slot-size 0x20000 --align 8 --pad --confirm --security-counter auto \
  app.bin app.signed.bin

say "4. Verify it with the public key"
brickless getpub -k signing-key.pem -e pem -o public-key.pem
brickless image verify -k public-key.pem app.signed.bin

say "5. Look inside"
brickless image inspect app.signed.bin

say "Done: every step passed."
