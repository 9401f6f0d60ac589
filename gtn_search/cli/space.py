"""``gtn-search space``: sample, validate, draw and size up cells; the zoo of published cells."""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from gtn_search.cli.common import (
    add_blueprint_argument,
    add_space_argument,
    check_output,
    resolve_blueprint,
    resolve_space,
)
from gtn_search.errors import ConfigError, GTNSearchError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("space", help="sample, validate, draw and size up cells")
    space_sub = p.add_subparsers(dest="space_command", metavar="ACTION", required=True)

    s = space_sub.add_parser("sample", help="sample N random architectures to a YAML file")
    add_space_argument(s)
    add_blueprint_argument(s)
    s.add_argument("-n", "--num", type=int, default=10, help="how many (default 10)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--out", required=True, help="output YAML (a collection; .yaml)")
    s.set_defaults(func=cmd_sample)

    v = space_sub.add_parser("validate", help="validate architecture/blueprint YAML files (exit 1 if any is invalid)")
    v.add_argument("files", nargs="+", help="YAML files to check")
    v.set_defaults(func=cmd_validate)

    d = space_sub.add_parser("draw", help="draw an architecture's normal and reduction cells as PNG")
    d.add_argument("file", help="architecture YAML (file or collection)")
    d.add_argument("--index", type=int, default=0, help="which architecture of a collection (default 0)")
    d.add_argument("--out", required=True, help="output PNG path")
    d.set_defaults(func=cmd_draw)

    i = space_sub.add_parser("info", help="space size, ops, and params/FLOPs of built networks")
    add_space_argument(i)
    add_blueprint_argument(i)
    i.add_argument("--arch", help="an architecture YAML to measure (default: sample --samples)")
    i.add_argument("--samples", type=int, default=8, help="random architectures to measure (default 8)")
    i.add_argument("--seed", type=int, default=0)
    i.set_defaults(func=cmd_info)

    z = space_sub.add_parser("zoo", help="list the published cells shipped with gtn-search, or write one out")
    z.add_argument("name", nargs="?", help="a zoo cell (e.g. darts-v2); leave out to list them all")
    z.add_argument("--out", help="write the cell as an architecture YAML file (for 'gtn-search train')")
    z.set_defaults(func=cmd_zoo)


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from search_spaces.yaml_format import ArchitectureRecord, save_architectures

    if args.num < 1:
        raise ConfigError(f"--num must be >= 1, got {args.num}")
    check_output(args.out, "--out", suffixes=(".yaml", ".yml"))
    space = resolve_space(args.space)
    blueprint = resolve_blueprint(args.blueprint) if args.blueprint else None
    rng = np.random.default_rng(args.seed)
    records = [
        ArchitectureRecord(space.sample(rng), space, blueprint, {"seed": args.seed, "sample": i})
        for i in range(args.num)
    ]
    out = save_architectures(args.out, records)
    print(f"wrote {len(records)} architectures from space '{space.name}' (seed {args.seed}) to {out}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from search_spaces.yaml_format import validate_file

    failures = 0
    for f in args.files:
        try:
            report = validate_file(f)
        except GTNSearchError as exc:
            failures += 1
            print(f"invalid: {exc}", file=sys.stderr)
            continue
        what = (
            "blueprint" if report.space is None
            else f"{report.architectures} architecture(s) in space '{report.space.name}'"
            + (", with blueprint" if report.blueprint else "")
        )
        print(f"ok: {f}: {what}")
    return 1 if failures else 0


def cmd_draw(args: argparse.Namespace) -> int:
    from search_spaces.drawing import draw_architecture
    from search_spaces.yaml_format import load_architectures

    records = load_architectures(args.file)
    if not 0 <= args.index < len(records):
        raise ConfigError(f"--index {args.index}: {args.file} holds {len(records)} architecture(s)")
    arch = records[args.index].architecture
    check_output(args.out, "--out", suffixes=(".png",))
    out = draw_architecture(arch, args.out, title=f"{Path(args.file).name} #{args.index}: {arch.short_hash}")
    print(f"wrote {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import numpy as np

    from search_spaces.network import build, network_cost
    from search_spaces.yaml_format import load_architecture

    space = resolve_space(args.space)
    blueprint = resolve_blueprint(args.blueprint)
    print(f"search space '{space.name}': {space.num_nodes} nodes x {space.inputs_per_node} inputs "
          f"({'may repeat' if space.allow_repeated_inputs else 'distinct'}), output rule {space.output}")
    print(f"  ops ({len(space.ops)}): {', '.join(space.ops)}")
    print(f"  cells: {space.cell_size():.4g}   architectures (normal x reduce): {space.size():.4g}")
    print(f"  vector encoding: {len(space.cardinalities())} categorical choices")
    print(f"blueprint: input {'x'.join(map(str, blueprint.input_shape))}, C={blueprint.channels}, "
          f"{blueprint.stages} stages x N={blueprint.cells_per_stage} (+{blueprint.stages - 1} reduction cells), "
          f"norm {blueprint.norm}, {blueprint.num_classes} classes")
    if args.arch:
        archs = [load_architecture(args.arch).architecture]
    else:
        if args.samples < 1:
            raise ConfigError(f"--samples must be >= 1, got {args.samples}")
        rng = np.random.default_rng(args.seed)
        archs = [space.sample(rng) for _ in range(args.samples)]
    costs = [network_cost(build(a, blueprint, seed=0), blueprint) for a in archs]
    if len(costs) == 1:
        c = costs[0]
        print(f"architecture {archs[0].short_hash}: {c.params:,} parameters, "
              f"{c.forward_flops / 1e6:.2f} MFLOPs per image (forward)")
        return 0
    params = [c.params for c in costs]
    flops = [c.forward_flops / 1e6 for c in costs]
    print(f"{len(costs)} sampled architectures (seed {args.seed}):")
    print(f"  parameters      min {min(params):,}  median {int(statistics.median(params)):,}  max {max(params):,}")
    print(f"  MFLOPs/image    min {min(flops):.2f}  median {statistics.median(flops):.2f}  max {max(flops):.2f}")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from search_spaces.yaml_format import dump_architecture, save_architecture
    from search_spaces.zoo import load_zoo_cell, zoo_names

    if args.name is None:
        if args.out:
            raise ConfigError("--out needs a zoo cell name, e.g. 'gtn-search space zoo darts-v2 --out darts-v2.yaml'")
        for name in zoo_names():
            record = load_zoo_cell(name)
            ops = sorted({op for kind in ("normal", "reduce") for op in record.architecture.cell(kind).ops_used})
            print(f"{name:12s} {record.metadata.get('title', name)}")
            print(f"{'':12s} source: {record.metadata.get('source', 'unknown')}")
            print(f"{'':12s} ops: {', '.join(ops)}")
        return 0
    record = load_zoo_cell(args.name)
    if args.out is None:
        print(dump_architecture(record), end="")
        return 0
    out = save_architecture(args.out, record)
    print(f"wrote {out}: {record.metadata.get('title', args.name)} ({record.architecture.short_hash}), "
          f"from {record.metadata.get('source', 'unknown')}")
    return 0
