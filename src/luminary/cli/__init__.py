"""CLI."""


def main() -> None:
    pass
