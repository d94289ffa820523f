#!/usr/bin/env bash
# Install what sentimon needs and is missing, and only that. Safe to run again.
#
#   scripts/setup.sh            runtime: Java 17, Maven, Prometheus, Alertmanager, .venv
#   scripts/setup.sh train,dev  also the training (torch) and developer (pytest, ruff) extras;
#                               dev also installs Chromium (apt) for the browser test
#
# System packages come from apt (sudo when not root). The Python package goes into .venv,
# installed editable so the repo's model/release and configs are used in place.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-}"
PYTHON="${PYTHON:-python3}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "not root and no sudo: install $* by hand"
  SUDO="sudo"
fi

missing=()
java_ok() {
  command -v java >/dev/null || return 1
  local v; v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  [ "${v:-0}" -ge 17 ]
}
java_ok || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null \
  || missing+=(prometheus-alertmanager)
# The dev extra's browser test (the notify page in headless Chromium) needs a browser.
case ",$EXTRAS," in
  *,dev,*) command -v chromium >/dev/null || missing+=(chromium) ;;
esac

if [ ${#missing[@]} -gt 0 ]; then
  say "apt: installing ${missing[*]}"
  command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || die "apt-get update failed"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
  # Debian starts the packaged services where systemd runs; sentimon runs its own copies.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus prometheus-alertmanager >/dev/null 2>&1 || true
  fi
else
  say "system packages: Java 17, Maven, Prometheus, Alertmanager${EXTRAS:+ (and what $EXTRAS needs)} already present"
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python 3.11+ is needed (found $("$PYTHON" --version 2>&1)); set PYTHON=..."
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv || die "python -m venv failed (Debian: apt-get install python3-venv)"
fi
spec="."
[ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
say "pip: installing sentimon${EXTRAS:+ with extras $EXTRAS} into .venv"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null || die "pip upgrade failed"
# pip's cache serves repeat installs of the large wheels (torch) without a download.
.venv/bin/python -m pip install -q -e "$spec" || die "pip install -e $spec failed"
say "ready: .venv/bin/sentimon --help"
