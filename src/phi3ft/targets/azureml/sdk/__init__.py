"""The Azure ML adapter: the only code that imports ``azure.*``, always lazily inside functions.

``azure-ai-ml`` alone takes ~2 s to import, so nothing here imports it at module level; ``phi3ft --help``
and ``phi3ft validate`` never load it.
"""
