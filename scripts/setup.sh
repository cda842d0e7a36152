#!/usr/bin/env bash
# Set up a fresh Debian / Raspberry Pi OS machine for edge-agent development:
# system packages (mosquitto, ffmpeg, Python venv) and the project's venv in .venv.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Usage: scripts/setup.sh [demo|test]   (default: test)
# demo: python3 + venv, mosquitto (the broker), ffmpeg (the sample clip).
# test: also openssl (TLS certificates), chromium + chromium-driver (the status
#       page), GStreamer's RTSP server with its Python bindings (a real RTSP
#       camera), systemd (systemd-analyze).
PROFILE="${1:-test}"
APT_PACKAGES=(python3 python3-venv python3-pip mosquitto mosquitto-clients ffmpeg)
if [ "$PROFILE" = "test" ]; then
  APT_PACKAGES+=(openssl chromium chromium-driver
                 gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi
                 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
                 systemd)
elif [ "$PROFILE" != "demo" ]; then
  echo "usage: scripts/setup.sh [demo|test]" >&2
  exit 2
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "setup: edge-agent needs Python >= 3.10 ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$PROFILE-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  if [ "$PROFILE" = "test" ]; then
    # Editable: a developer's changes take effect without reinstalling.
    .venv/bin/python -m pip install -q -e '.[test]'
  else
    # The demo: a plain install (no editable-install notice on a first run).
    .venv/bin/python -m pip install -q '.'
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
fi
