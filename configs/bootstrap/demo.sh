#!/usr/bin/env bash
# Placeholder: the lead wires the demo (install, build base image, `corral up`, `corral run`).
echo "demo not wired yet" >&2
exit 1
