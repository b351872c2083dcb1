"""The web app: upload a photo in the browser, turn the 3D face around, download the mesh.

``face3d-mesh web`` (:func:`run_web`) starts it; ``streamlit run`` :data:`APP_PATH` hosts
it. Importing this package imports neither Streamlit nor Plotly (only the page does).
"""

from __future__ import annotations

from ._server import APP_PATH, run_web, streamlit_command

__all__ = ["APP_PATH", "run_web", "streamlit_command"]
