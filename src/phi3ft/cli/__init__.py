"""The thin CLI layer: parse, call one service, render. No business logic lives here."""

from phi3ft.cli.app import app, main

__all__ = ["app", "main"]
