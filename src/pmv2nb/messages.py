"""Chat message contents: a string, or a list of typed parts (text, and images in multimodal histories).

This sits below the data tables and the models, which both read message contents (the data to parse
histories, the models to count a chat's tokens), so neither has to import the other for it.
"""

from __future__ import annotations

from typing import Any


def content_text(content: Any, image_placeholder: str = "[image]") -> str:
    """Text-only view of a message content: strings pass through, image parts become a placeholder."""
    if isinstance(content, str):
        return content
    pieces = []
    for part in content:
        if part.get("type") == "text":
            pieces.append(part.get("text", ""))
        else:
            pieces.append(image_placeholder)
    return "\n".join(pieces)


def content_images(content: Any) -> list[str]:
    """The image URLs (often ``data:image/...;base64,`` URLs) inside a message content, in order."""
    if isinstance(content, str):
        return []
    return [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]


def check_content(content: Any) -> None:
    """Refuse a content that is neither a string nor a list of typed parts, or an image part without a url."""
    if isinstance(content, str):
        return
    if not isinstance(content, list) or not all(isinstance(part, dict) and "type" in part for part in content):
        raise ValueError("content must be a string or a list of content parts with a 'type'")
    for part in content:
        if part["type"] == "image_url" and not isinstance(part.get("image_url", {}).get("url"), str):
            raise ValueError("an image_url content part has no url")
