#!/usr/bin/env bash
# Jittor backend CI, in its own environment (Jittor 1.3.11 pins numpy 1.26, the main one has
# numpy 2): install from scratch, set up oneDNN for Jittor (Debian's libdnnl-dev, laid out in
# Jittor's cache so that nothing is downloaded), compile Jittor, run tests/test_jittor.py.
# The Jittor compile cache (~/.cache/jittor) is kept between runs on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
VENV=.venv-jittor
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1 -e ".[test,jittor]" \
    -e examples/jmedbench-example-plugin
echo "jittor CI: environment installed after $(( $(date +%s) - start )) s"
# exit 1 = Jittor works but without oneDNN (slow, still correct): warn, test anyway
"$VENV/bin/python" -m jmedbench_jittor.setup --apt || { rc=$?; [ "$rc" -eq 1 ] || exit "$rc"; }
echo "jittor CI: Jittor ready after $(( $(date +%s) - start )) s"
"$VENV/bin/python" -m pytest tests/test_jittor.py tests/test_jittor_kernels.py -p no:cacheprovider
echo "jittor CI: done after $(( $(date +%s) - start )) s"
