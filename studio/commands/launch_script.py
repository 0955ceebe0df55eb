"""`studio launch-script`: a ready Slurm sbatch file or SkyPilot task for a run config, over N nodes of G GPUs.

    studio launch-script --slurm --config run.yaml --nodes 2 --gpus-per-node 8 > train.sbatch && sbatch train.sbatch
    studio launch-script --skypilot --config run.yaml --nodes 2 -o task.yaml && sky launch task.yaml

Each node runs ``torchrun --nnodes N --node_rank i --rdzv_endpoint HEAD:PORT -m studio.cli train --config ...``:
`studio train` unchanged, rank 0 alone writes the run folder (on storage every node sees).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from studio.errors import ConfigError

PORT = 29500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--slurm", action="store_true", help="Write an sbatch file (srun starts torchrun per node).")
    kind.add_argument("--skypilot", action="store_true", help="Write a SkyPilot task YAML.")
    parser.add_argument("--config", required=True, help="The run config YAML every node trains.")
    parser.add_argument("--nodes", type=int, default=1, help="Machines (default 1).")
    parser.add_argument("--gpus-per-node", type=int, default=None,
                        help="Processes (GPUs) per machine (default: train.processes of the config).")
    parser.add_argument("--port", type=int, default=PORT, help=f"Rendezvous port on the first node (default {PORT}).")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="Config overrides passed to every node's studio train.")
    parser.add_argument("-o", "--output", help="Write here instead of stdout.")


def _train_args(config: str, overrides: list[str]) -> str:
    words = ["-m", "studio.cli", "train", "--config", config]
    for item in overrides:
        words += ["--set", item]
    return " ".join(shlex.quote(w) for w in words)


def slurm_script(config: str, *, nodes: int, gpus: int, port: int = PORT, overrides: list[str] = (),
                 name: str = "studio-train") -> str:
    """An sbatch file: one task per node, each a torchrun agent of ``gpus`` processes (the c10d rendezvous on the
    first node numbers the nodes, so every node runs the same line)."""
    return f"""#!/bin/bash
#SBATCH --job-name={name}
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={gpus}
#SBATCH --output={name}-%j.log
# Written by `studio launch-script --slurm`: each node runs `studio train` under torchrun; rank 0 writes the run.
set -euo pipefail
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun python -m torch.distributed.run --nnodes {nodes} --nproc_per_node {gpus} \\
  --rdzv_id "$SLURM_JOB_ID" --rdzv_backend c10d --rdzv_endpoint "$HEAD:{port}" \\
  {_train_args(config, list(overrides))}
"""


def skypilot_task(config: str, *, nodes: int, gpus: int, port: int = PORT, overrides: list[str] = (),
                  name: str = "studio-train", accelerator: str = "A100") -> str:
    """A SkyPilot task YAML: ``num_nodes`` machines, torchrun per node over SkyPilot's node IPs."""
    return f"""# Written by `studio launch-script --skypilot`: sky launch this file (edit accelerators to your GPUs).
name: {name}
num_nodes: {nodes}
resources:
  accelerators: {accelerator}:{gpus}
workdir: .
setup: |
  pip install -e .
run: |
  HEAD=$(echo "$SKYPILOT_NODE_IPS" | head -n 1)
  python -m torch.distributed.run --nnodes {nodes} --nproc_per_node {gpus} \\
    --node_rank "$SKYPILOT_NODE_RANK" --rdzv_backend c10d --rdzv_endpoint "$HEAD":{port} \\
    {_train_args(config, list(overrides))}
"""


def run(args: argparse.Namespace) -> int:
    from studio.config import load_config

    cfg = load_config(args.config).with_overrides(args.overrides)  # a bad config is one line here, not on a node
    gpus = args.gpus_per_node or cfg.train.processes
    if args.nodes < 1 or gpus < 1:
        raise ConfigError(f"--nodes and --gpus-per-node must be >= 1, got {args.nodes} and {gpus}")
    name = "studio-" + Path(args.config).stem
    make = slurm_script if args.slurm else skypilot_task
    text = make(args.config, nodes=args.nodes, gpus=gpus, port=args.port, overrides=args.overrides, name=name)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
