"""The Streamlit leaderboard, shipped inside the package so that `harness serve` finds it in any install.

`app.py` is the entry script (Streamlit runs it; `server.py` starts Streamlit for `harness serve`); `views/`
holds one script per page; `common.py` the cached read-only queries they share; `ranking.py` the pure
computations (ranks, budgets, Pareto fronts); `charts.py` the Vega-Lite specs of the charts. Importing this
package does not import Streamlit.
"""

from pathlib import Path

APP_SCRIPT = Path(__file__).with_name("app.py")
