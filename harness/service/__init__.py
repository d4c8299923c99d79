"""The service layer: what the CLI's verbs (and the leaderboard, and tools) call.

`check` and `submit` take a submission folder; `evaluate` plans the runs of a track, executes them through a
runner and scores them; `standings` ranks the stored runs (the one ranking, used by the CLI and the board);
`results` resolves run references and compares and exports runs; `layers` profiles stored runs. Functions
raise `HarnessError` for anything the user can fix; they never print.
"""
