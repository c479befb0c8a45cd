"""`minirun compose`: multi-container applications from compose.yaml.

  loader   files, .env, interpolation, YAML (anchors, merge keys), merging, project name
  model    validation against the Compose rules, the canonical form (`config`)
  adapter  one service -> the front end's RunOptions (the only place that knows both)
  project  up/down/ps/logs/exec/run/start/stop/restart/build/pull/top/scale over the
           front end's library API (minirun/frontend/, minirun/network/api.py)

Containers, networks and volumes are named and labelled as Docker Compose names
them, so `minirun ps` and `minirun inspect` show a compose project as docker does.
See docs/compose.md.
"""
