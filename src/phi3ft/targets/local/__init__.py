"""The local target: ``phi3ft train`` as a detached process on this machine (``backend: local``)."""
