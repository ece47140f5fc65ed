"""`faultdrill clean`: remove everything faultdrill left in the Docker engine.

Why a command of its own: the Docker driver and the compose stack label every container,
network, volume and built image `faultdrill=1` and remove them when they finish, but a
grader killed with SIGKILL (or a power cut) cannot clean up after itself. This finds
whatever carries the label and removes it; nothing unlabelled is touched, and the local
base image (`faultdrill/python-base:bookworm`, labelled `faultdrill.base=1` only) is kept
because rebuilding it needs debootstrap.
"""
from __future__ import annotations

import argparse
import sys

HELP = "remove every container, network, volume and built image labelled faultdrill=1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", metavar="RUN_ID", default=None,
                        help="only what one run created (label faultdrill.run=RUN_ID)")
    parser.add_argument("--keep-images", action="store_true",
                        help="keep built images (faster next build); remove the rest")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would be removed, remove nothing")


def _listing(client, run_id: str | None, images: bool) -> dict[str, list[str]]:
    from graders.drivers.docker import LABEL, RUN_LABEL
    filters = {"label": [f"{LABEL}=1"] + ([f"{RUN_LABEL}={run_id}"] if run_id else [])}
    out = {
        "containers": [c.name for c in client.containers.list(all=True, filters=filters)],
        "networks": [n.name for n in client.networks.list(filters=filters)],
        "volumes": [v.name for v in client.volumes.list(filters=filters)],
        "images": [],
    }
    if images:
        out["images"] = [(i.tags or [i.short_id])[0]
                         for i in client.images.list(filters=filters)]
    from graders.drivers.docker_network import leftover_links
    out["links"] = leftover_links(run_id)     # veth ends of isolated networks
    return out


def run(args: argparse.Namespace) -> int:
    from graders.drivers.docker import DockerUnavailable, connect, docker_host, remove_labelled
    try:
        client = connect(timeout=30)
    except DockerUnavailable as exc:
        print(f"faultdrill clean: {exc}", file=sys.stderr)
        return 1
    try:
        if args.dry_run:
            found = _listing(client, args.run, not args.keep_images)
            total = sum(len(v) for v in found.values())
            for kind, names in found.items():
                for name in names:
                    print(f"would remove {kind[:-1]} {name}")
            print(f"{total} object(s) labelled faultdrill=1 at {docker_host()}")
            return 0
        done = remove_labelled(client, run_id=args.run, images=not args.keep_images)
    finally:
        client.close()
    for kind in ("containers", "networks", "volumes", "images", "links"):
        for name in done[kind]:
            print(f"removed {kind[:-1]} {name}")
    for err in done["errors"]:
        print(f"faultdrill clean: could not remove {err}", file=sys.stderr)
    removed = sum(len(done[k]) for k in ("containers", "networks", "volumes", "images", "links"))
    print(f"removed {removed} object(s) labelled faultdrill=1"
          + (f" ({len(done['errors'])} error(s))" if done["errors"] else ""))
    return 1 if done["errors"] else 0
