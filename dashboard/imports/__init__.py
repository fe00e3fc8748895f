"""Importers: public 311 files and CSV cases (``cases``), a district's GeoJSON grids
(``grids``)."""
