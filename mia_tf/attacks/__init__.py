"""Attacks: each is a plain function over a head callable and the observed features.

- `whitebox.whitebox_attack`: rMLE (Algorithm 1) and exact inversion of linear heads.
"""
