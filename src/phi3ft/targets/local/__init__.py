"""The local target: ``phi3ft train`` as a detached process on this machine (``backend: local``).

Public API for code outside the target (the CLI): the job folder's file names below. ``backend`` (the
``LocalBackend`` itself) is an internal; code outside gets a backend from :func:`phi3ft.connect.open_backend`.
"""

#: The trainer's input in a local job's folder (``TrainOptions`` as JSON): ``eval --baseline`` reads it back.
OPTIONS_FILE = "options.json"

__all__ = ["OPTIONS_FILE"]
