"""Errors raised by the image tooling in ``corral.kernels``."""
from __future__ import annotations

from corral.common.errors import BackendError, NotFound


class UnknownRecipe(NotFound):
    type_suffix = "unknown-image-recipe"
    title = "Unknown image recipe"


class InvalidRecipe(BackendError):
    type_suffix = "invalid-image-recipe"
    title = "Invalid image recipe"


class ImageBuildError(BackendError):
    type_suffix = "image-build-failed"
    title = "Image build failed"
