"""The leaderboard's pages, one Streamlit script each (run by `st.navigation`, not imported)."""
