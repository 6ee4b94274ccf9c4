"""The second backend's ground: a Docker Swarm of engines, here as containers on one machine.

`cluster` makes, reads back and removes an N-node Swarm of engine containers
(`netbed cluster up/status/down`); `doctor` checks one (`netbed doctor
--cluster NAME`); `nodes` parses what a Swarm and a node's port probe say
(pure). Only this package and `compose` import docker-py.
"""
