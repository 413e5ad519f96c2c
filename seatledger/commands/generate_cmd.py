"""Commands: filled in by the work on this group."""


def register(app) -> None:
    return None
