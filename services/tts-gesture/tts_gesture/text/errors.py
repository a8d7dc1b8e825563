"""The one error g2p raises: text it cannot speak, with the characters at fault (the service answers 4xx)."""

from __future__ import annotations


class G2PError(ValueError):
    def __init__(self, message: str, characters: list[str] | None = None) -> None:
        self.characters = characters or []
        super().__init__(message)

    @classmethod
    def unreadable(cls, characters: list[str], language: str) -> G2PError:
        shown = " ".join(repr(c) for c in characters)
        return cls(f"g2p ({language}) cannot read these characters: {shown}", characters)
