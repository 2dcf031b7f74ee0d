#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine: system libraries through apt-get when
# they are missing, then a virtualenv from pyproject.toml. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

need_apt=()
"$PYTHON" -c "import ctypes.util, sys; sys.exit(not ctypes.util.find_library('magic'))" \
  || need_apt+=(libmagic1)
"$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1 || need_apt+=(python3-venv)
# OCR of scans: tesserocr's wheel brings libtesseract; the English model comes from Debian.
compgen -G "/usr/share/tesseract-ocr/*/tessdata/eng.traineddata" >/dev/null \
  || need_apt+=(tesseract-ocr tesseract-ocr-eng)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need_apt[*]} with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: creating .venv from pyproject.toml (a few minutes the first time; pip's output in .venv/pip.log)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  if ! { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip \
         && .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' \
         && .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps \
              imagededup==0.3.3.post2; } \
       >.venv/pip.log 2>&1; then
    tail -n 30 .venv/pip.log >&2
    echo "bootstrap: pip install failed; the whole output is in .venv/pip.log" >&2
    exit 1
  fi
  touch "$stamp"
fi
