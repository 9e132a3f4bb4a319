"""Look inside: a local web page that shows what happens inside your own model (``python -m gpt serve``).

* :mod:`gpt.serve.inspect_model` -- what the page shows, as functions of a model and token ids:
  tokens with their bytes and merge ranks, the next-token distribution under temperature / top-k /
  top-p, attention weights, the logit lens, losses per position, a run's loss curves.
* :mod:`gpt.serve.api` -- the JSON API (:class:`~gpt.serve.api.Session`): checks every request.
* :mod:`gpt.serve.server` -- the standard library's threaded HTTP server around it, serving
  ``static/`` (plain HTML, CSS and JavaScript: no framework, no build step, works offline).
"""
