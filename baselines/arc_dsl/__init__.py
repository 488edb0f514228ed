"""A small DSL for ARC grids: primitives (geometry, cells, objects, regions, colours) and a search.

``primitives`` holds grid -> grid functions, ``search`` the demonstration-driven best-first
search that composes them (depth <= 3) and fits a final colour map; ``baselines.grid_template``
wraps it as the ``template-grids`` predictor.
"""

from baselines.arc_dsl.primitives import Prim, prims_for, static_prims
from baselines.arc_dsl.search import Found, SearchResult, fit_colour_map, search

__all__ = ["Prim", "prims_for", "static_prims", "Found", "SearchResult", "fit_colour_map", "search"]
