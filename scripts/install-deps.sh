#!/usr/bin/env bash
# Installs everything brickless's tests and demo need on a fresh Debian machine:
# cross targets for the no_std crates and the real peer tools the interop tests run.
# Safe to run again: each step is skipped when already satisfied.
set -euo pipefail

log() { printf '[install-deps] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi

# Cross targets: the no_std crates are built for Cortex-M0+ (L0/G0), M4/M7 and M33.
targets="thumbv6m-none-eabi thumbv7em-none-eabihf thumbv8m.main-none-eabihf"
if command -v rustup >/dev/null 2>&1; then
  installed=$(rustup target list --installed)
  for t in $targets; do
    if ! grep -qx "$t" <<<"$installed"; then
      log "rustup target add $t"
      rustup target add "$t"
    fi
  done
  for c in rustfmt clippy; do
    rustup component list --installed | grep -q "^$c" || rustup component add "$c"
  done
fi

# Debian peers: stm32flash (AN3155 host), socat (pty pairs), dfu-util (dfu-suffix/dfu-prefix).
apt_pkgs=""
command -v stm32flash >/dev/null 2>&1 || apt_pkgs="$apt_pkgs stm32flash"
command -v socat >/dev/null 2>&1 || apt_pkgs="$apt_pkgs socat"
command -v dfu-suffix >/dev/null 2>&1 || apt_pkgs="$apt_pkgs dfu-util"
if [ -n "$apt_pkgs" ]; then
  log "apt-get install$apt_pkgs"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $apt_pkgs >/dev/null
fi

# QEMU 10 (STM32 boards b-l475e-iot01a and netduinoplus2) for the bootloader's boot tests,
# and the Arm GCC toolchain for the C example application.
bash "$(dirname "$0")/install-qemu-arm.sh" >/dev/null
if ! command -v arm-none-eabi-gcc >/dev/null 2>&1; then
  log "apt-get install gcc-arm-none-eabi"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    gcc-arm-none-eabi libnewlib-arm-none-eabi >/dev/null
fi

# cbindgen generates the C header of the application library (firmware/app-c); pinned so
# the committed header stays byte for byte what it prints.
if ! cbindgen --version 2>/dev/null | grep -q '0\.29\.'; then
  log "cargo install cbindgen"
  cargo install -q --locked cbindgen --version '^0.29'
fi

# Python peers: imgtool (MCUboot signing), stm32loader, smpmgr/smpclient, pyserial; and the
# Python package's build tools.
py_missing=""
python3 -c 'import imgtool' 2>/dev/null || py_missing="$py_missing imgtool"
python3 -c 'import stm32loader' 2>/dev/null || py_missing="$py_missing stm32loader"
python3 -c 'import serial' 2>/dev/null || py_missing="$py_missing pyserial"
python3 -c 'import smpclient' 2>/dev/null || py_missing="$py_missing smpclient"
command -v smpmgr >/dev/null 2>&1 || py_missing="$py_missing smpmgr"
# maturin builds the Python package's wheel (scripts/python.sh); pytest runs its tests.
command -v maturin >/dev/null 2>&1 || py_missing="$py_missing maturin"
python3 -c 'import pytest' 2>/dev/null || py_missing="$py_missing pytest"
if [ -n "$py_missing" ]; then
  log "pip install$py_missing"
  python3 -m pip install -q --disable-pip-version-check $py_missing
fi
log "done"
