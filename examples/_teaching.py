"""Printing helpers shared by the example scripts."""


def section(title: str, *explanation: str) -> None:
    """A heading and a few lines of plain-language explanation."""
    print()
    print("=" * 72)
    print(title)
    print("=" * 72)
    for line in explanation:
        print(line)
    print()
