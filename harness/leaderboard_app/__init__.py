"""The Streamlit leaderboard, shipped inside the package so that `harness serve` finds it in any install.

`app.py` is the entry script (`streamlit run` runs it); `views/` holds one script per page; `common.py` the
cached read-only queries they share; `ranking.py` the pure computations (ranks, budgets, Pareto fronts).
Importing this package does not import Streamlit.
"""

from pathlib import Path

APP_SCRIPT = Path(__file__).with_name("app.py")
