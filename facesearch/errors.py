"""The named errors of facesearch. Each message says what happened and what to try; the CLI prints it and
exits with the error's `exit_code` (2 for all of them: 0 and 1 are answers, see `facesearch --help`)."""
from __future__ import annotations


class FacesearchError(Exception):
    """Something facesearch cannot do as asked; the message says what to try."""

    exit_code = 2


class PhotoNotFound(FacesearchError):
    """A photo or folder that was named does not exist."""


class PhotoUnreadable(FacesearchError):
    """A file could not be decoded as a photo."""


class NoFaceFound(FacesearchError):
    """No face was found in a photo where one is needed."""


class EmptyHome(FacesearchError):
    """The home folder holds no database yet: nothing was indexed or enrolled there."""


class NoPeopleEnrolled(FacesearchError):
    """No one is enrolled yet, so there is no one to name."""


class NothingIndexed(FacesearchError):
    """No gallery photo is indexed yet, so there is nothing to search."""


class UnknownPerson(FacesearchError):
    """No one of that name is enrolled."""


class InvalidName(FacesearchError):
    """A person's name that cannot be used."""


class DatabaseDamaged(FacesearchError):
    """The database file is not a database, or is damaged."""


class ModelNotFound(FacesearchError):
    """The extractor's weights or their metadata are missing."""


class ModelRefused(ModelNotFound):
    """The extractor's graph holds what the engine will not run (`models/graph_check.py`): as good as no model."""


class ModelMismatch(FacesearchError):
    """The stored vectors come from another extractor than the one in use."""


class DatabaseUnavailable(FacesearchError):
    """The database could not be opened or written."""


class BadOutputPath(FacesearchError):
    """An output path that cannot be written as asked."""


class EngineUnavailable(FacesearchError):
    """The engine asked for (`index --engine ray`) cannot be started or reached."""


class CorrectionRefused(FacesearchError):
    """A cluster, face or person named in a correction does not exist, or the correction cannot be applied."""


class CalibrationFailed(FacesearchError):
    """The photos given for calibration cannot fix a threshold (too few people or faces)."""
