"""WSGI entry point for gunicorn: ``scim_server.wsgi:app``."""

from scim_server.app import create_app

app = create_app()
