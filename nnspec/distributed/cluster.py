"""Joining a Ray cluster: the one place that imports Ray, so that a missing `[ray]` extra or an address
that answers nothing is a one-line error naming the fix."""
from __future__ import annotations

import argparse
import logging
from typing import Any

from ..errors import SpecError, first_line

EXTRA = "pip install 'nnspec[ray]'"


def add_arguments(p: argparse.ArgumentParser, ray_help: str) -> None:
    """--backend and --address, as every command that runs on Ray takes them."""
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help=f"local: on this machine (default); ray: {ray_help} (the [ray] extra)")
    p.add_argument("--address", metavar="ADDR", help="with --backend ray: the Ray cluster to join ('auto': the one "
                   "`ray start` runs here; default: a Ray started for this command alone)")


def check_address(args: argparse.Namespace, tool: str) -> None:
    if args.address and args.backend != "ray":
        raise SpecError("--address joins a Ray cluster: give --backend ray with it", tool)


def ray_module(tool: str) -> Any:
    try:
        import ray
    except ImportError:  # also sys.modules['ray'] = None
        raise SpecError(f"--backend ray needs Ray: {EXTRA}", tool) from None
    return ray


def connect(tool: str, address: str | None) -> Any:
    """Ray, connected: to the cluster at `address` ('auto': the one `ray start` runs on this machine), or
    without one, to a Ray started here for this command's length."""
    ray = ray_module(tool)
    if ray.is_initialized():
        return ray
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=True, include_dashboard=False,
                 configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        reason = first_line(exc)
        raise SpecError(f"--address {address}: cannot join that Ray cluster: {reason}", tool) from None
    return ray


def task_cpus(ray: Any, tasks: int) -> int:
    """CPUs for each of `tasks` tasks at once: a share of the cluster's, no more than its largest node has."""
    nodes = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    total = sum(nodes) or 1
    return int(max(1, min(total // tasks, max(nodes, default=1))))
