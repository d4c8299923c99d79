"""The leaderboard's entry script: page setup, the shared sidebar, and the navigation between the pages."""

import streamlit as st

from harness.leaderboard_app.common import sidebar

st.set_page_config(page_title="harness leaderboard", page_icon=":material/leaderboard:", layout="wide")

# Material icons ship with Streamlit; emoji would depend on the fonts of the reader's machine.
pages = [
    st.Page("views/standings.py", title="Standings", icon=":material/leaderboard:", default=True),
    st.Page("views/pareto.py", title="Pareto fronts", icon=":material/scatter_plot:", url_path="pareto"),
    st.Page("views/submission.py", title="Submission", icon=":material/inventory_2:", url_path="submission"),
    st.Page("views/compare.py", title="Compare runs", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("views/history.py", title="History", icon=":material/timeline:", url_path="history"),
    st.Page("views/competition.py", title="Competitions", icon=":material/emoji_events:", url_path="competition"),
]
navigation = st.navigation(pages)
sidebar()
navigation.run()
