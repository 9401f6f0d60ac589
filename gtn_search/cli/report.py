"""``gtn-search report``: one self-contained HTML report of a study or a comparison."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("report", help="write one self-contained HTML report of a study (.db) or a compare folder")
    r.add_argument("source", help="a study file (written by 'gtn-search search') or a folder written by 'compare'")
    r.add_argument("--out", required=True, help="the HTML file to write (images are embedded in it)")
    r.add_argument("--top", type=int, default=5, help="how many of the best trials to show with drawings (default 5)")
    r.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from gtn_search.cli.common import check_output
    from gtn_search.html_report import write_html_report

    check_output(args.out, "--out")  # an existing folder or an unwritable place: refused before any work
    path = write_html_report(args.source, args.out, top=args.top)
    print(f"wrote {path.resolve()} ({path.stat().st_size / 1024:.0f} KiB, self-contained)")
    return 0
