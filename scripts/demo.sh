#!/usr/bin/env bash
# The main job on the shipped default data: submit the reference submissions, evaluate every track, print
# the leaderboards. State goes to ./harness.db and ./.harness unless HARNESS_DB_URL / HARNESS_HOME say otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh demo
harness=.venv/bin/harness
for submission in submissions/*/; do
  [ -f "$submission/pyproject.toml" ] || continue
  "$harness" submit "$submission"
done
for track in classification small-object text-detection; do
  "$harness" evaluate --track "$track" --profile "${HARNESS_PROFILE:-quick}"
done
for track in classification small-object text-detection; do
  "$harness" leaderboard --track "$track"
done
# A competition: the shipped example bundle (competitions/smallobj-sprint), the Faster R-CNN references as the
# organiser's baselines, two participants. alice enters the references; bob his own project (the default-anchor
# model under his name). The public board ranks them; the private one waits for the organiser's close-phase.
competition=smallobj-sprint
"$harness" competition create "competitions/$competition"
"$harness" participants add alice --team red --competition "$competition" --exist-ok
"$harness" participants add bob --competition "$competition" --exist-ok
bob=$(mktemp -d)
trap 'rm -rf "$bob"' EXIT
cp -r submissions/fasterrcnn/fasterrcnn_ref "$bob/"
sed -e '/^fasterrcnn_small = /d' -e 's/^fasterrcnn_default = /bob_frcnn = /' -e 's/harness-fasterrcnn-ref/bob-detector/' \
  submissions/fasterrcnn/pyproject.toml >"$bob/pyproject.toml"
"$harness" submit submissions/fasterrcnn --competition "$competition" --as alice
"$harness" submit "$bob" --competition "$competition" --as bob
"$harness" evaluate --competition "$competition" --variant fp32
"$harness" leaderboard --competition "$competition"
# The data every run was scored on matches the track cards' pins, and the references reach their pinned figures.
"$harness" datasets verify
.venv/bin/python scripts/check_reference_metrics.py
