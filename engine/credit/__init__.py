"""Credit management as collections practice teaches it: scoring and grades, limits and holds, early warnings.

    rules      credit.yaml / warnings.yaml: schemas, located problems, the loaded rules
    scoring    measures over the window, factor bands and points, the grade (pure)
    desk       the use cases: score, review, set, check, holds and warnings at every sweep
SQL lives in engine.store.credit.
"""
