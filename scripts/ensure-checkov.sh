#!/usr/bin/env bash
# Make sure checkov is installed in its own virtualenv, .venv/checkov: its pins
# (packaging<24, boto3...) conflict with the server's, so it cannot live in .venv
# itself. Reinstalled when requirements-checkov.txt changes. Prints nothing when
# there is nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv/checkov
STAMP="$VENV/.installed-$(cksum < requirements-checkov.txt | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ -x "$VENV/bin/checkov" ]; then
  exit 0
fi
echo "installing checkov into $VENV (requirements-checkov.txt)" >&2
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
touch "$STAMP"
