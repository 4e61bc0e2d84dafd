#!/usr/bin/env bash
# Builds the firmware workspace (firmware/, thumb targets, its own lock file) one board at a
# time, and reports sizes.
#
#   scripts/firmware.sh build    every board's bootloader (with and without SMP recovery),
#                                the example applications and the C library (the default)
#   scripts/firmware.sh size     .text + .rodata (and all flash) of each bootloader build
#   scripts/firmware.sh header   regenerates firmware/app-c/brickless_app.h with cbindgen
#   scripts/firmware.sh check-header   fails if the committed header is stale
#   scripts/firmware.sh lint     clippy (warnings are errors) for every board
#
# BRICKLESS_KEY=path/to/key.pem embeds your public key (default: the insecure dev key).
set -euo pipefail
cd "$(dirname "$0")/../firmware"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_FIRMWARE:-$PWD/target}"
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS

# board:target
boards="nucleo-h753zi:thumbv7em-none-eabihf b-l475e-iot01a:thumbv7em-none-eabihf
nucleo-f767zi:thumbv7em-none-eabihf stm32f407-disco:thumbv7em-none-eabihf
netduinoplus2:thumbv7em-none-eabihf nucleo-l073rz:thumbv6m-none-eabi"
qemu_boards="b-l475e-iot01a netduinoplus2"

out="$CARGO_TARGET_DIR/boards"
mkdir -p "$out"

build_bootloader() { # board target config(recovery|minimal)
  local feats="board-$1"
  [ "$3" = recovery ] && feats="$feats,recovery"
  cargo build --release --locked -q -p brickless-bootloader --no-default-features \
    --features "$feats" --target "$2"
  cp "$CARGO_TARGET_DIR/$2/release/brickless-bootloader" "$out/bootloader-$1-$3.elf"
}

cmd="${1:-build}"
case "$cmd" in
  build)
    for bt in $boards; do
      b="${bt%%:*}"; t="${bt##*:}"
      for config in recovery minimal; do
        echo "== bootloader $b ($config)"
        build_bootloader "$b" "$t" "$config"
      done
      echo "== C library $b"
      cargo build --release --locked -q -p brickless-app-c --features "board-$b" --target "$t"
      cp "$CARGO_TARGET_DIR/$t/release/libbrickless_app.a" "$out/libbrickless_app-$b.a"
    done
    for b in $qemu_boards; do
      echo "== example application $b"
      cargo build --release --locked -q -p brickless-example-app --features "board-$b" \
        --target thumbv7em-none-eabihf
      cp "$CARGO_TARGET_DIR/thumbv7em-none-eabihf/release/brickless-example-app" "$out/app-$b.elf"
    done
    echo "firmware built into $out"
    ;;
  size)
    printf '%-18s %-9s %9s %9s %9s %9s\n' board config .text .rodata text+ro flash
    for bt in $boards; do
      b="${bt%%:*}"; t="${bt##*:}"
      for config in minimal recovery; do
        f="$out/bootloader-$b-$config.elf"
        [ -f "$f" ] || build_bootloader "$b" "$t" "$config"
        arm-none-eabi-size -A "$f" | awk -v b="$b" -v c="$config" '
          $1 == ".text" { text = $2 } $1 == ".rodata" { ro = $2 }
          $1 == ".vector_table" || $1 == ".data" { other += $2 }
          END { printf "%-18s %-9s %9d %9d %9d %9d\n", b, c, text, ro, text + ro, text + ro + other }'
      done
    done
    ;;
  lint)
    for bt in $boards; do
      b="${bt%%:*}"; t="${bt##*:}"
      feats="brickless-bootloader/board-$b,brickless-app-c/board-$b"
      pkgs="-p brickless-bootloader -p brickless-app-c -p brickless-stm32"
      case " $qemu_boards " in *" $b "*) feats="$feats,brickless-example-app/board-$b"; pkgs="$pkgs -p brickless-example-app";; esac
      echo "== clippy $b"
      # shellcheck disable=SC2086
      cargo clippy --release --locked -q $pkgs --features "$feats" --target "$t" -- -D warnings
      # The bootloader without SMP recovery too (the size report's minimal configuration).
      cargo clippy --release --locked -q -p brickless-bootloader --no-default-features \
        --features "board-$b" --target "$t" -- -D warnings
    done
    ;;
  header)
    cbindgen --config app-c/cbindgen.toml --crate brickless-app-c --output app-c/brickless_app.h app-c
    ;;
  check-header)
    tmp=$(mktemp)
    cbindgen --config app-c/cbindgen.toml --crate brickless-app-c --output "$tmp" app-c
    if ! diff -u app-c/brickless_app.h "$tmp"; then
      echo "firmware/app-c/brickless_app.h is stale: run scripts/firmware.sh header" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 [build|size|header|check-header]" >&2
    exit 2
    ;;
esac
