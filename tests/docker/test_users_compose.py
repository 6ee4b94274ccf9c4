"""A user's own compose file, unchanged: its pinned subnet never collides, and every host reboots as it was."""

from __future__ import annotations

import threading

from netbed import faults
from netbed.backend.compose.testbed import Testbed

PINNED = """
services:
  web:
    image: netbed-host:latest
    init: true
    command: [sleep, infinity]
    networks:
      lan:
        ipv4_address: 172.28.5.7
  db:
    image: netbed-host:latest
    init: true
    command: [sleep, infinity]
    networks: [lan]
networks:
  lan:
    ipam:
      config:
        - subnet: 172.28.5.0/24
"""


def test_two_testbeds_of_a_file_that_pins_its_subnet_come_up_at_once_and_reboot_as_they_were(tmp_path,
                                                                                              docker_engine):
    path = tmp_path / "compose.yaml"
    path.write_text(PINNED)
    beds: list[Testbed] = []
    errors: list[BaseException] = []

    def up(n: int) -> None:
        try:
            beds.append(Testbed.up(path, run_dir=tmp_path / f"run{n}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=up, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        a, b = beds
        assert a.host("web").ip.rsplit(".", 1)[0] != b.host("web").ip.rsplit(".", 1)[0], "each its own subnet"
        for bed in beds:
            web, db = bed.host("web"), bed.host("db")
            assert web.ip.endswith(".7") and db.ip.endswith(".10"), (web, db)
            faults.crash(bed, "db")
            faults.reboot(bed, "db")
            bed.hosts = bed._discover_hosts(docker_engine, ["web", "db"])
            assert (bed.host("db").ip, bed.host("db").mac) == (db.ip, db.mac), "back with the same IP and MAC"
    finally:
        for bed in beds:
            bed.down()
