"""Build script for the one thing pyproject.toml cannot declare: the optional C extension.

``phi3ft.data._speedups`` runs the validator's per-byte scans (pre-filters, duplicate keys, letter case)
in C. ``optional=True``: where it does not compile (no C compiler), the install still succeeds and
``phi3ft.data.scan`` uses its pure-Python versions of the same functions (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "phi3ft.data._speedups",
            ["src/phi3ft/data/_speedups.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
