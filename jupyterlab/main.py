"""Serves the JupyterLab application built in build/ with Debian's jupyterlab_server (LabServerApp).

    python3 jupyterlab/main.py [jupyter_server options, e.g. --port=8888 --no-browser]

Like jupyter-lab it prints the URL with its token, and takes --ServerApp.* options. The tslab kernel
(jupyter/kernels/boat-typescript, found through JUPYTER_PATH) is the default kernel.
"""

import json
import os

from jupyter_core.paths import jupyter_config_dir
from jupyterlab_server import LabServerApp

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(HERE, "build")

with open(os.path.join(HERE, "package.json"), encoding="utf-8") as f:
    VERSION = json.load(f)["version"]


def _jupyter_server_extension_points():
    return [{"module": __name__, "app": BoatLabApp}]


class BoatLabApp(LabServerApp):
    name = "boat_lab"
    extension_url = "/lab"
    default_url = "/lab"
    app_url = "/lab"
    app_name = "JupyterLab (boat)"
    app_version = VERSION
    load_other_extensions = False
    static_dir = BUILD
    templates_dir = os.path.join(HERE, "templates")
    schemas_dir = os.path.join(BUILD, "schemas")
    themes_dir = os.path.join(BUILD, "themes")
    app_settings_dir = os.path.join(BUILD, "application_settings")
    # Where jupyter-lab keeps them, with its environment variables (LabConfig's defaults are empty, which
    # leaves the settings editor and workspaces nowhere to save).
    user_settings_dir = os.environ.get("JUPYTERLAB_SETTINGS_DIR") or os.path.join(
        jupyter_config_dir(), "lab", "user-settings"
    )
    workspaces_dir = os.environ.get("JUPYTERLAB_WORKSPACES_DIR") or os.path.join(
        jupyter_config_dir(), "lab", "workspaces"
    )
    # The build has no terminal extension.
    serverapp_config = {"terminals_enabled": False}

    def initialize_settings(self):
        super().initialize_settings()
        # Open new notebooks and consoles on the repo's TypeScript kernel when it is installed.
        kernel_manager = self.serverapp.kernel_manager
        if "boat-typescript" in self.serverapp.kernel_spec_manager.find_kernel_specs():
            kernel_manager.default_kernel_name = "boat-typescript"


if __name__ == "__main__":
    if not os.path.isfile(os.path.join(BUILD, "bundle.js")):
        raise SystemExit("error: the JupyterLab application is not built; run: bash scripts/run.sh lab")
    BoatLabApp.launch_instance()
