"""``python -m minihart.gradcheck [OP ...]``: gradient-check minihart's ops in float64 and print a
table (the command a teacher runs in class); ``--impl student.py [OP ...]`` grades a student's
``<op>_forward`` / ``<op>_backward`` instead (:mod:`minihart.gradcheck.kit`)."""
from __future__ import annotations

import argparse
import sys

from minihart.backend import array_module
from minihart.cli import number
from minihart.gradcheck import cases, kit


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minihart.gradcheck",
        description="Gradient-check every registered op of minihart in float64 and print a table (op, relative "
                    "error, tolerance, pass/fail, shapes); with --impl, grade a student's ops instead.")
    p.add_argument("ops", nargs="*", metavar="OP",
                   help="cases to run (default: all); with --impl, ops or cases of the student's file "
                        "(default: every op whose _forward and _backward it defines)")
    p.add_argument("--impl", metavar="FILE",
                   help="a Python file defining <op>_forward and <op>_backward (e.g. conv2d_forward, "
                        "conv2d_backward): each is checked against finite differences and against minihart, "
                        "with verdicts good (< 1e-7), suspicious (1e-7 to 1e-4) and wrong (> 1e-4); "
                        "exit status 0 only when every verdict is good")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "gpu"],
                   help="array module to run on (default: cpu)")
    p.add_argument("--seed", type=number(int, 0), default=0, help="seed of the random upstream gradient")
    return p


def run_registry(names, xp, seed) -> int:
    unknown = [o for o in names if o not in cases.CASES]
    if unknown:
        print(f"error: unknown op(s) {unknown}; known: {sorted(cases.CASES)}", file=sys.stderr)
        return 2
    rows = [cases.run_case(n, xp, seed) for n in (names or sorted(cases.CASES))]
    w = max(len(r["op"]) for r in rows)
    print(f"{'op':<{w}}  {'rel. error':>10}  {'tol':>7}  result  shapes")
    for r in rows:
        result = "pass" if r["passed"] else "FAIL"
        print(f"{r['op']:<{w}}  {r['error']:10.2e}  {r['tol']:7.0e}  {result:6}  {r['shapes']}")
    n_fail = sum(not r["passed"] for r in rows)
    print(f"{len(rows) - n_fail} passed, {n_fail} failed")
    return 1 if n_fail else 0


def _error_cell(err, where):
    if err != err:
        return "-"
    at = f" at {where}" if where is not None and kit.verdict(err) != "good" else ""
    return f"{err:.1e}{at}"


def run_impl(path, names, xp, seed) -> int:
    try:
        module = kit.load_impl(path)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the student's file itself fails to run
        print(f"error: {path} does not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    known_ops = dict.fromkeys(op for op, _ in cases.CASES.values())
    defined = kit.ops_of(module)
    todo = []
    for name in names or defined:  # an op stands for all its cases (conv2d: conv2d, conv2d_grouped)
        op = name if name in known_ops else cases.CASES[name][0] if name in cases.CASES else None
        if op is None:
            print(f"error: unknown op {name!r}; known ops: {list(known_ops)}", file=sys.stderr)
            return 2
        missing = [f"{op}_{part}" for part in ("forward", "backward")
                   if not callable(getattr(module, f"{op}_{part}", None))]
        if missing:
            print(f"error: {path} does not define {' and '.join(missing)}", file=sys.stderr)
            return 2
        todo += [(op, c) for c in kit.cases_of(op)] if name in known_ops else [(op, name)]
    if not todo:
        print(f"error: {path} defines no <op>_forward and <op>_backward of a known op ({list(known_ops)})",
              file=sys.stderr)
        return 2
    rows, problems = [], []
    for op, name in todo:
        fwd, bwd = getattr(module, f"{op}_forward"), getattr(module, f"{op}_backward")
        try:
            rows += kit.grade_case(name, fwd, bwd, xp, seed)
        except Exception as exc:
            rows.append(kit.Row(name, "(error)", float("inf"), None, float("inf"), None))
            if str(exc).startswith("check: "):  # a gradient of the wrong shape, or a missing one
                problems.append(f"{name}: {str(exc)[7:]}")
            else:
                problems.append(f"{name}: your {op}_forward/{op}_backward raised {type(exc).__name__}: {exc}")
    w = max(len(r.case) for r in rows)
    cells = [(r.case, r.argument, _error_cell(r.fd_error, r.fd_where), _error_cell(r.ref_error, r.ref_where),
              r.verdict) for r in rows]
    wa, wf, wr = (max(len(c[k]) for c in cells) for k in (1, 2, 3))
    print(f"{'case':<{w}}  {'argument':<{max(wa, 8)}}  {'vs finite diff.':<{max(wf, 15)}}  "
          f"{'vs minihart':<{max(wr, 11)}}  verdict")
    for c in cells:
        print(f"{c[0]:<{w}}  {c[1]:<{max(wa, 8)}}  {c[2]:<{max(wf, 15)}}  {c[3]:<{max(wr, 11)}}  {c[4]}")
    problems += [kit.message(r) for r in rows if r.verdict != "good" and r.argument != "(error)"]
    for line in problems:
        print(line)
    counts = {v: sum(r.verdict == v for r in rows) for v in ("good", "suspicious", "wrong")}
    print(", ".join(f"{n} {v}" for v, n in counts.items()))
    return 0 if counts["good"] == len(rows) else 1


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        xp = array_module(args.device)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.impl:
        return run_impl(args.impl, args.ops, xp, args.seed)
    return run_registry(args.ops, xp, args.seed)


if __name__ == "__main__":
    sys.exit(main())
