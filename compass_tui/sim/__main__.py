"""Command line: ``python -m compass_tui.sim --fault F --seed N --out PATH`` or ``--all --count N --out DIR``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from compass_tui.sim import ALL_FAULTS, KNOBS, SimOptions, generate, write_bundle
from compass_tui.sim.realism import MODES
from compass_tui.sim.scenario import SCHEMES


def build_parser() -> argparse.ArgumentParser:
    """The simulator's argument parser."""
    p = argparse.ArgumentParser(prog="python -m compass_tui.sim",
                                description="Simulate incidents and write them as COMPASS incident bundles.")
    p.add_argument("--fault", choices=ALL_FAULTS, help="catalog fault id to inject")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--services", type=int, help="number of services (5-2000); random when omitted")
    p.add_argument("--step", type=int, help="sample step in seconds; random when omitted")
    p.add_argument("--scheme", choices=SCHEMES, help="service label scheme; random when omitted")
    p.add_argument("--realism", choices=MODES, default="random",
                   help="realism knobs: random per scenario (default), off, or real (the real-like flavour)")
    p.add_argument("--force", action="append", default=[], choices=KNOBS, metavar="KNOB",
                   help=f"turn a realism knob on (repeatable): {', '.join(KNOBS)}")
    p.add_argument("--all", action="store_true", help="write a suite: every fault, --count seeds each")
    p.add_argument("--count", type=int, default=1, help="incidents per fault with --all (default 1)")
    p.add_argument("--tar", action="store_true", help="with --all, write .tar.gz files instead of directories")
    p.add_argument("--out", required=True, help="bundle path (a directory, or a file ending .tar.gz); a directory with --all")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the simulator command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    opts = SimOptions(services=args.services, step=args.step, scheme=args.scheme, realism=args.realism,
                      force=tuple(args.force))
    try:
        if args.all:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            for fault in ALL_FAULTS:
                for k in range(args.count):
                    seed = args.seed + k
                    t0 = time.perf_counter()
                    inc = generate(fault, seed, opts)
                    name = f"{fault}-{seed}" + (".tar.gz" if args.tar else "")
                    path = write_bundle(inc, out / name)
                    print(f"{path}\t{len(inc.topo.services)} services\t{time.perf_counter() - t0:.2f}s", flush=True)
            return 0
        if not args.fault:
            print("error: --fault is required unless --all is given", file=sys.stderr)
            return 2
        inc = generate(args.fault, args.seed, opts)
        path = write_bundle(inc, args.out)
        print(path)
        return 0
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
