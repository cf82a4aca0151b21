"""Where the files kept at the project's root are found, in a checkout and in an installed wheel.

``schemas/`` (the SCIM schema documents, DESIGN §2) and ``deploy/gunicorn.conf.py`` (the
production settings ``scim-server serve`` runs with) live at the root of the repository, one
copy each. A source checkout or an editable install reads them there; ``setup.py`` copies them
into the package (``scim_server/_files``) when it builds a wheel, so a server installed with
``pip install`` or in the container image has them too.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
#: The copies inside an installed wheel (written by ``setup.py``; absent in a checkout).
PACKAGED = _PACKAGE / "_files"


def _located(relative: str) -> Path:
    packaged = PACKAGED / relative
    if packaged.exists():
        return packaged
    return _PACKAGE.parent / relative


def schema_folder() -> Path:
    """The folder of SCIM schema and resource type documents."""
    return _located("schemas")


def gunicorn_config() -> Path:
    """gunicorn's production configuration file."""
    return _located("deploy/gunicorn.conf.py")
