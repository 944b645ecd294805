"""The analyst console: server-rendered pages under ``/console`` on the API's port (issue 7).

``fengkong.web.users`` (logins and sessions) is imported by the engine; the pages (``fengkong.web.app``) only by
the HTTP app, so a Python or CLI user of the engine never loads FastAPI or Jinja2 for them.
"""
