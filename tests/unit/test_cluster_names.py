"""A cluster's names and roles, without an engine: what `netbed cluster up` makes is named from them."""

from __future__ import annotations

import pytest

from netbed.backend import TestbedError, check_cluster_name, check_node_count
from netbed.backend.swarm import cluster


@pytest.mark.parametrize("n, wanted", [
    (1, ["manager"]),
    (2, ["manager", "worker"]),  # two managers would lose quorum with either node: one manages
    (3, ["manager"] * 3),        # any one node may crash and the Swarm still has a quorum
    (5, ["manager"] * 3 + ["worker"] * 2),
])
def test_the_first_three_nodes_manage_from_three_nodes_on(n, wanted):
    assert cluster.roles(n) == wanted


def test_everything_is_named_after_the_cluster():
    assert cluster.container_name("lab", 2) == "lab-node2"
    assert cluster.volume_name("lab", 2) == "lab-node2-data"
    assert cluster.network_name("lab") == "lab-nodes"
    assert cluster.folder("lab") == cluster.CLUSTERS_DIR / "lab"


@pytest.mark.parametrize("name", ["", "Lab", "9lab", "lab-", "-lab", "lab_1", "a" * 31, "lab/x", "lab x"])
def test_names_that_would_not_make_a_container_network_and_cgroup_are_refused(name):
    with pytest.raises(TestbedError, match="is not valid"):
        check_cluster_name(name)


@pytest.mark.parametrize("n", [0, 10, -1])
def test_one_to_nine_nodes(n):
    with pytest.raises(TestbedError, match="1 to 9 nodes"):
        check_node_count(n)
    assert check_node_count(9) == 9 and check_cluster_name("netbed-cluster") == "netbed-cluster"


def test_the_node_image_is_rebuilt_when_its_recipe_or_base_changes():
    digest = cluster.node_image_digest("netbed-base:x", "sha256:1")
    assert digest == cluster.node_image_digest("netbed-base:x", "sha256:1")
    assert digest != cluster.node_image_digest("netbed-base:x", "sha256:2")
    assert digest != cluster.node_image_digest("debian:bookworm-slim", "sha256:1")
    assert "docker.io" in cluster.NODE_DOCKERFILE and "--pull" not in cluster.NODE_DOCKERFILE
