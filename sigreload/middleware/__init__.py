"""sigreload inside your app: one middleware line inserts the snippet into
its pages, the same way sigreload's proxy does (``serving/injection.py``),
with no extra hop.

- Flask, or any WSGI app: ``app.wsgi_app = WSGIMiddleware(app.wsgi_app)``
- FastAPI, Starlette: ``app.add_middleware(ASGIMiddleware)``
- any other ASGI app (Litestar, Quart...): ``app = ASGIMiddleware(app)``
- Django: ``"sigreload.middleware.DjangoMiddleware"`` in ``MIDDLEWARE``

The pages' snippet talks to the broadcaster on ``SIGRELOAD_WS_PORT`` (5678
unless set) of the page's host; run ``sigreload-broadcast`` and
``sigreload-watch . --app URL`` beside the app (or ``sigreload --no-http
--app URL``). Inert where sigreload is not running: while no broadcaster of
this user listens on that port (and for Django, unless ``DEBUG``), every
answer passes byte for byte. Importing this imports no framework and starts
nothing.
"""

from sigreload.middleware.asgi import ASGIMiddleware
from sigreload.middleware.for_django import DjangoMiddleware
from sigreload.middleware.wsgi import WSGIMiddleware

__all__ = ["ASGIMiddleware", "DjangoMiddleware", "WSGIMiddleware"]
