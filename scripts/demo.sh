#!/usr/bin/env bash
# Set up (first time only) and run `shiftrl demo`: make data, train, evaluate, print scores.
source "$(dirname "$0")/_venv.sh"
ensure_venv ""
exec "$VENV/bin/shiftrl" demo "$@"
