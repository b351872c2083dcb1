"""Front-ends: the ways a person reaches the pipeline.

- :mod:`~face3d_mesh.frontends.cli` — the ``face3d-mesh`` command line;
- :mod:`~face3d_mesh.frontends.batch` — many photos to many meshes (process pool);
- :mod:`~face3d_mesh.frontends.viewer` — the interactive VTK window and headless screenshots;
- :mod:`~face3d_mesh.frontends.web` — the Streamlit web app (``face3d-mesh web``).

Front-ends call only the pipeline (:mod:`face3d_mesh.pipeline`), the exporters and the
shared presentation helpers, never one another's private modules.
"""
