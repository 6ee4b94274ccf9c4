"""The second backend: one testbed across the engines of a Docker Swarm.

`cluster` makes, reads back and removes an N-node Swarm of engine containers
on one machine (`netbed cluster up/status/down`); `doctor` checks one
(`netbed doctor --cluster NAME`); `nodes` parses what a Swarm and a node's
port probe say (pure). `testbed` brings a compose file up across the nodes
(an overlay network, the hosts as plain containers on each node's engine);
`recorder` records the overlay on every node, merged into one capture. Only
this package and `compose` import docker-py.
"""
