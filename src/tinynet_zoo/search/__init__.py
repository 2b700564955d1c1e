"""Rubik's-cube search: sample twists under MAC budgets, train each briefly, fit your own tiny formula.

`tinynet_zoo.run_search` runs trials (local process pool or Ray) into an append-only results file;
`tinynet_zoo.search_report` finds the Pareto front, the Spearman correlations and fits the formula.
Importing this package loads neither torch, ray nor scikit-learn.
"""
