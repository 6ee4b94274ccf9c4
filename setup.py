"""The optional C speedups of netbed.tcp (src/netbed/tcp/_speedups.c).

Everything else is in pyproject.toml. The extension is optional: without a C
compiler and Python's headers the install still succeeds and netbed.tcp runs
its pure-Python reader and analysis (as it does inside the hosts), slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "netbed.tcp._speedups",
            ["src/netbed/tcp/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
