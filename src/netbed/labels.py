"""The labels netbed puts on what it makes on an engine, and what their values mean: in one place.

Every container and network of a testbed carries PROJECT, RUN_DIR, OWNER and
STARTED; ROLE says what a container is to netbed. A cluster's nodes, their
volumes and network carry CLUSTER instead of PROJECT (no testbed's clean-up
touches them; `netbed cluster down` removes them). OWNER says who may tear a
testbed down: "<machine>:<pid>:<front end>" for a testbed that dies with the
process that made it (`netbed clean` removes it once that process is gone),
KEPT for one left up on purpose, "docker-compose" for a project started with
plain `docker compose up`.
"""

from __future__ import annotations

import os
import socket

PREFIX = "org.netbed."
PROJECT = PREFIX + "project"
RUN_DIR = PREFIX + "run-dir"
OWNER = PREFIX + "owner"
STARTED = PREFIX + "started"
ROLE = PREFIX + "role"
TARGET = PREFIX + "target"                  # the host a helper works on
CAPTURE = PREFIX + "capture"                # "extra": a capture started with `netbed capture start`
CAPTURE_PATH = PREFIX + "capture-path"
CAPTURE_LIMIT = PREFIX + "capture-max-frames"
CONTEXT = PREFIX + "context"                # on netbed's image: the digest of the build context it came from
CLUSTER = PREFIX + "cluster"                # what `netbed cluster up` made: its node containers, volumes, network
NODE = PREFIX + "node"                      # a cluster node's name (node1, node2, ...)
NODE_ENDPOINT = PREFIX + "node-endpoint"    # the Docker endpoint of a node's engine, as the runner reaches it
SWARM_ROLE = PREFIX + "swarm-role"          # manager or worker: what a node joined the Swarm as

# ROLE values
HOST = "host"
CAPTURE_ROLE = "capture"
VIEWER = "viewer"              # the demo's live ladder
ISOLATOR = "isolator"          # the demo's one-shot route remover
FAULT_HELPER = "fault-helper"  # a short-lived container in a host's network namespace
SHAPER = "shaper"              # the NFQUEUE delay shaper of `impair --delay`
CLAIM = "claim"                # holds a testbed's name while it is made
CLUSTER_NODE = "cluster-node"  # a Docker Engine in a container, one node of a `netbed cluster`
CLUSTER_NETWORK = "cluster-network"  # the internal network between a cluster's nodes
NOT_HOSTS = frozenset({CAPTURE_ROLE, VIEWER, ISOLATOR})  # services of a compose file that are not hosts

OWNER_COMPOSE = "docker-compose"

KEPT_OWNERS = ("kept", "cli")
"""Owners (HOST:kept, HOST:cli) of testbeds meant to outlive their process: `run --keep`,
`--netbed-keep`, `netbed up`."""


def kept_owner() -> str:
    """The owner label of a testbed kept up on purpose: `netbed clean` leaves it alone unless told --kept."""
    return f"{socket.gethostname()}:kept"


def owner_id() -> str:
    """This process as the owner label names it."""
    return f"{socket.gethostname()}:{os.getpid()}"
