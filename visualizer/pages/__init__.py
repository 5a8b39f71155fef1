"""The pages: one module per page (and the JSON or HTML fragments its script asks for).

Each view parses the request, calls one builder and renders one template; the routes are
all in ``visualizer/urls.py``.
"""
