"""netbed: real TCP hosts in containers, real faults, proof from the wire."""

__version__ = "0.1.0"
