"""Container image references, checked as Docker (and Cortex's `DockerImage` rule) reads them.

The grammar is the distribution project's reference grammar: ``[domain[:port]/]path[:tag][@digest]``
with a lowercase path of components separated by ``/``, a tag of at most 128 word characters, dots
and dashes, and a digest ``algorithm:hex``. Placeholders such as ``<AWS_ACCOUNT_ID>.dkr.ecr...``,
upper-case repositories and two tags are refused here instead of at the first pull.
"""

from __future__ import annotations

import re

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
                        rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?")
# The repository name (domain and path) may be at most 255 characters.
_MAX_NAME = 255

IMAGE_REQUIREMENT = (
    "must be a container image reference such as registry.example.com/team/model:1.2 "
    "([registry/]repository[:tag][@sha256:digest], repository in lower case, at most one tag)"
)


def is_image_reference(text: str) -> bool:
    """Whether ``text`` is a valid image reference (see the module docstring)."""
    match = _REFERENCE.fullmatch(text)
    if match is None:
        return False
    domain = match.group("domain")
    if domain is not None and not ("." in domain or ":" in domain or domain == "localhost"):
        # Docker reads a first part without '.' or ':' as part of the repository path, not a registry.
        if re.fullmatch(_COMPONENT, domain) is None:
            return False
    name = text.split("@", 1)[0]
    if match.group("tag") is not None:
        name = name[: -len(match.group("tag")) - 1]
    return len(name) <= _MAX_NAME
