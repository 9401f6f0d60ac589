"""``gtn-search plugins``: list the registered ops, search spaces, strategies and evaluators."""

from __future__ import annotations

import argparse

from gtn_search.registry import ALL_REGISTRIES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugins", help="list registered ops, search spaces, strategies, evaluators")
    p.add_argument("kind", nargs="?", choices=sorted(ALL_REGISTRIES), help="only this kind")
    p.set_defaults(func=cmd_plugins)


def cmd_plugins(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else list(ALL_REGISTRIES)
    for kind in kinds:
        registry = ALL_REGISTRIES[kind]
        entries = registry.entries()
        print(f"{kind} ({len(entries)}; entry-point group {registry.group}):")
        width = max((len(e.name) for e in entries), default=0)
        for e in entries:
            print(f"  {e.name:<{width}}  {e.description}")
    return 0
