"""The paper's user study (Sec. 4.3) as a reproducible web app: `spsagan-study` (docs/study.md).

design (create), store (SQLite votes), app (Flask server, API, results page), export (CSV),
simulate (scripted raters), stats and figures (Fig. 9 and 10), report (reports/study.md).
"""
