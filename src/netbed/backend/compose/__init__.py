"""The first backend: a Compose project on one Docker Engine, the runner on the engine's machine or not.

`testbed` brings a project up and down and acts on its containers; `engine`
finds, installs and starts the engine and builds the host image (the doctor);
`capture` records the project's bridge from a container of its own. Only this
package imports docker-py.
"""

from netbed.backend.compose.testbed import Testbed

__all__ = ["Testbed"]
