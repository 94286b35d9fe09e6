"""Attacks: each is a plain function over a head (or a query oracle) and the observed features.

- `whitebox.whitebox_attack`: rMLE (Algorithm 1) and exact inversion of linear heads.
- `blackbox.blackbox_attack`: inverse network (Algorithm 2), shadow model (Table 8), or hybrid,
  from query access only (`oracle.QueryOracle`).
"""
