"""gunicorn settings for mailstead-console (dev: `gunicorn -c webui/gunicorn.conf.py`)."""

wsgi_app = "webui:create_app()"
bind = "127.0.0.1:8080"
workers = 2
