"""The ``satvision`` command line (also ``python -m satvision``)."""
