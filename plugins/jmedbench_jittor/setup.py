"""Prepare Jittor for offline CPU use, once per machine:

    python -m jmedbench_jittor.setup [--apt] [--no-compile]

1. oneDNN: with ``--apt`` (as root) installs Debian's ``libdnnl-dev`` if no system oneDNN is
   found, then lays it out in Jittor's cache where Jittor looks before downloading its own.
2. Compiles Jittor (its first import, minutes) unless ``--no-compile``, and checks that its
   oneDNN operators loaded.

Exit status 0 when Jittor is ready with oneDNN, 1 when it is ready without it (slow), 2 when
Jittor is not installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from jmedbench_jittor import runtime


def apt_install_onednn() -> bool:
    if runtime.system_onednn() is not None:
        return True
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print("setup: cannot install libdnnl-dev (needs apt-get as root)", file=sys.stderr)
        return False
    print("setup: apt-get install libdnnl-dev", file=sys.stderr, flush=True)
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "libdnnl-dev"]):
        if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:
            return False
    return runtime.system_onednn() is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jmedbench_jittor.setup",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--apt", action="store_true",
                        help="install Debian's libdnnl-dev when no system oneDNN is found")
    parser.add_argument("--no-compile", action="store_true",
                        help="only lay out oneDNN; do not import (compile) Jittor")
    args = parser.parse_args(argv)
    if not runtime.jittor_installed():
        print(f"setup: Jittor is not installed: {runtime.INSTALL_HINT}", file=sys.stderr)
        return 2
    if args.apt:
        apt_install_onednn()
    ready = runtime.install_system_onednn()
    print(f"setup: oneDNN {'in place at ' + str(runtime.onednn_dir()) if ready else 'missing'}",
          file=sys.stderr)
    if args.no_compile:
        return 0 if ready else 1
    jt = runtime.import_jittor()
    from jittor import nn
    y = nn.Conv2d(1, 2, 3, padding=1)(jt.ones((1, 1, 8, 8)))
    y.sync()
    used = runtime.onednn_in_use()
    print(f"setup: Jittor {jt.__version__} ready in {runtime.cache_dir()}; oneDNN "
          f"{'in use' if used else 'NOT in use (convolutions ~40x slower)'}", file=sys.stderr)
    return 0 if used else 1


if __name__ == "__main__":
    sys.exit(main())
