"""Layers that leak by design: DET reveals equality, OPE reveals order (and more).

Kept under their own import path, like pyca's `hazmat.decrepit`, so every use is visible.
"""
