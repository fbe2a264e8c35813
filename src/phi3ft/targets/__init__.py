"""Backends: where fine-tunes run. Only ``backends.azureml`` imports ``azure.*`` (lazily)."""
