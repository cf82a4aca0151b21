"""Build hook: the wheel carries the root's ``schemas/`` and ``deploy/gunicorn.conf.py``.

Everything else about the package is in ``pyproject.toml``. Those two live outside the package
(one copy each, DESIGN §2), so ``build_py`` copies them into ``scim_server/_files``, where
``scim_server.project_files`` looks first; a checkout reads them in place.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("schemas", "deploy/gunicorn.conf.py")


class BuildWithProjectFiles(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads them in the checkout
            return
        target = Path(self.build_lib, "scim_server", "_files")
        shutil.rmtree(target, ignore_errors=True)  # a file deleted since the last build goes too
        for relative in SHIPPED:
            source, copy = ROOT / relative, target / relative
            copy.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, copy, dirs_exist_ok=True)
            else:
                shutil.copy2(source, copy)


setup(cmdclass={"build_py": BuildWithProjectFiles})
