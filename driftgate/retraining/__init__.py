"""The retraining loop (SPEC 8): a window of labelled predictions -> the user's train function, run in
a subprocess -> a new registered version with lineage -> compared with the champion on held-out recent
rows -> a rollout when it is better.

`spec`, `window` and `evaluation` are pure; `job` is the subprocess; `service` runs jobs for the server.
"""
