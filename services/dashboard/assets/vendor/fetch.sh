#!/usr/bin/env bash
# Re-fetches the vendored Chart.js from the npm registry (`npm pack`) and checks it against the
# sha256 recorded in VENDOR.md, so the committed file is provably the published one.
# Usage: services/dashboard/assets/vendor/fetch.sh   (needs node's npm; writes only this folder)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
package=chart.js
version=4.6.1
file_sha256=$(sed -n 's/^| `chart.umd.min.js` | `\([0-9a-f]*\)`.*/\1/p' "$here/VENDOR.md")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package@$version" >/dev/null && tar xzf "$package-$version.tgz")
got=$(sha256sum "$work/package/dist/chart.umd.min.js" | cut -d' ' -f1)
if [ "$got" != "$file_sha256" ]; then
  echo "fetch.sh: $package@$version chart.umd.min.js has sha256 $got, VENDOR.md says $file_sha256" >&2
  exit 1
fi
cp "$work/package/dist/chart.umd.min.js" "$here/chart.umd.min.js"
cp "$work/package/LICENSE.md" "$here/chart.js-LICENSE.md"
echo "vendored $package@$version ($got)"
