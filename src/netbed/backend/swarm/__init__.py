"""The second backend: one testbed across the engines of a Docker Swarm (`netbed cluster` makes one on a machine).

`testbed` brings a compose file up across the nodes (an overlay network, the
hosts as plain containers on each node's engine); `recorder` records the
overlay on every node, merged into one capture.
"""
