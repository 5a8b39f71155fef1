"""The HTTP API (DRF): thin views that parse a request, call one domain function and
shape its answer. ``urls.py`` holds every route (namespace ``api``)."""
