"""The demo district and its simulator: not the product.

``district``: a generated district; ``simulator``: live producers; ``history``: past cases in
bulk; ``supervisor``: the processes of ``lianqin demo``.
"""
