# Settings the real jupyter/scipy-notebook image ships in /etc/jupyter: listen on every address of the
# container (so -p 8888:8888 reaches it), never try to open a browser inside the container, serve the
# home folder. Apps behind our port preview see their own origin, so no allow_origin is needed.
import os

c = get_config()  # noqa: F821 (provided by Jupyter when it loads this file)
c.NotebookApp.ip = "0.0.0.0"
c.NotebookApp.port = int(os.environ.get("JUPYTER_PORT", "8888"))
c.NotebookApp.open_browser = False
c.NotebookApp.notebook_dir = "/home/jovyan"
c.NotebookApp.nbserver_extensions = {"shipshape_lab_redirect": True}
