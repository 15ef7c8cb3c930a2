"""/lab and /lab/... (JupyterLab's addresses, which the material and the real image's log show) lead
to the classic notebook's file list, keeping ?token=…, so a learner who types the material's URL
still lands in Jupyter rather than on a 404."""
from notebook.utils import url_path_join
from tornado.web import RedirectHandler


def load_jupyter_server_extension(app):
    web_app = app.web_app
    base = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base, r"/lab(?:/.*)?"), RedirectHandler, {"url": url_path_join(base, "/tree")})])
