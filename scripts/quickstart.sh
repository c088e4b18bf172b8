#!/usr/bin/env bash
# Install facesearch into .venv and run the main job on a small sample of the shared LFW photos:
# enroll four people (3 photos each), index a gallery of 120 other photos, ask who is in a photo that was
# not enrolled, find every gallery photo of one person, and show the home's status.
# Set FACESEARCH_DATA to the shared data folder if it is not ../shared/data; DEMO_DIR to choose where the demo
# files go (default a new temporary folder, kept at the end and named so that it can be used or removed).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${FACESEARCH_DATA:-$(cd .. && pwd)/shared/data}"
LFW="$DATA/lfw/images"
[ -d "$LFW" ] || { echo "no LFW photos under $LFW: set FACESEARCH_DATA to the shared data folder" >&2; exit 2; }

[ -x .venv/bin/facesearch ] || { python3 -m venv .venv && .venv/bin/pip install -q -e .; }
FS=.venv/bin/facesearch

DEMO="${DEMO_DIR:-$(mktemp -d -t facesearch-demo-XXXX)}"
export FACESEARCH_HOME="$DEMO/home"
mkdir -p "$DEMO/enroll" "$DEMO/gallery"
# Enrolled: photos 1-3 of four people. Gallery: their photos 4-18, plus 60 photos of people never enrolled.
for person in George_W_Bush Colin_Powell Tony_Blair Gerhard_Schroeder; do
  photos=("$LFW/$person"/*.jpg)
  mkdir -p "$DEMO/enroll/$person"
  cp "${photos[@]:0:3}" "$DEMO/enroll/$person/"
  cp "${photos[@]:3:15}" "$DEMO/gallery/"
done
for person in Jennifer_Aniston Serena_Williams Vladimir_Putin Jacques_Chirac Ariel_Sharon Hugo_Chavez; do
  photos=("$LFW/$person"/*.jpg)
  cp "${photos[@]:0:10}" "$DEMO/gallery/"
done

set -x
$FS enroll --folders "$DEMO/enroll"
$FS index "$DEMO/gallery"
$FS who "$LFW/Tony_Blair/Tony_Blair_0100.jpg" "$LFW/Vladimir_Putin/Vladimir_Putin_0020.jpg"
$FS search Colin_Powell
$FS status
{ set +x; } 2>/dev/null

cat <<END

Right answers: Tony_Blair for the first photo; unknown for the second (Vladimir Putin is not enrolled);
Colin Powell's gallery photos from search.
The demo's home (database and index) is kept so that you can go on: $FACESEARCH_HOME
Its photos are under $DEMO; remove it all with: rm -rf $DEMO
facesearch is installed in .venv: activate it (. .venv/bin/activate) or call .venv/bin/facesearch, e.g.
  .venv/bin/facesearch --home $FACESEARCH_HOME who $LFW/Colin_Powell/Colin_Powell_0100.jpg
  .venv/bin/facesearch --help
END
