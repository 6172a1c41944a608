#!/usr/bin/env bash
# Lints openapi.yaml with Redocly CLI (the `recommended` ruleset, redocly.yaml)
# and Spectral (the `spectral:oas` ruleset, .spectral.yaml), each at a pinned
# version run through npx. Fails on any error or warning of either.
#
# Without Node.js (node and npx) it says so and exits 0: `make lint` still runs
# ruff on a machine without Node.js. The first run downloads both tools from the
# npm registry into npx's cache (about half a minute); later runs take seconds.
#
#   bash tools/lint_openapi.sh [document]     (default: openapi.yaml)
set -euo pipefail

REDOCLY_CLI="@redocly/cli@2.77.0"
SPECTRAL_CLI="@stoplight/spectral-cli@6.16.3"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
spec="${1:-openapi.yaml}"

if ! command -v npx >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    echo "lint_openapi: SKIPPED: npx/node not found; install Node.js (with npm) to lint" \
         "$spec with $REDOCLY_CLI and $SPECTRAL_CLI" >&2
    exit 0
fi

# No telemetry, update notices or funding messages: only the registry is reached.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
export NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=0

# Redocly exits non-zero on errors only: its JSON report counts the warnings.
if npx --yes "$REDOCLY_CLI" lint --config redocly.yaml --format=json "$spec" \
        >"$work/redocly.json" 2>"$work/redocly.err" || [ -s "$work/redocly.json" ]; then
    if ! redocly_counts="$(node -e '
            const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
            console.log(`${r.totals.errors} ${r.totals.warnings}`);' "$work/redocly.json")"; then
        cat "$work/redocly.err" >&2
        echo "lint_openapi: FAILED: $REDOCLY_CLI gave no report" >&2
        exit 1
    fi
else
    cat "$work/redocly.err" >&2
    echo "lint_openapi: FAILED: $REDOCLY_CLI did not run" >&2
    exit 1
fi
read -r redocly_errors redocly_warnings <<<"$redocly_counts"
if [ "$redocly_errors" != 0 ] || [ "$redocly_warnings" != 0 ]; then
    # The same findings, readable.
    npx --yes "$REDOCLY_CLI" lint --config redocly.yaml "$spec" 2>/dev/null || true
    failed=1
fi

# Spectral: --fail-severity=warn exits non-zero on any warning or error.
spectral_status=0
npx --yes "$SPECTRAL_CLI" lint --ruleset .spectral.yaml --fail-severity=warn \
    --format=stylish --format=json --output.json="$work/spectral.json" "$spec" \
    2>"$work/spectral.err" || spectral_status=$?
if ! spectral_counts="$(node -e '
        const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const n = (s) => r.filter((x) => x.severity === s).length;
        console.log(`${n(0)} ${n(1)}`);' "$work/spectral.json" 2>/dev/null)"; then
    cat "$work/spectral.err" >&2
    echo "lint_openapi: FAILED: $SPECTRAL_CLI did not run" >&2
    exit 1
fi
read -r spectral_errors spectral_warnings <<<"$spectral_counts"
if [ "$spectral_status" != 0 ] || [ "$spectral_errors" != 0 ] || [ "$spectral_warnings" != 0 ]; then
    failed=1
fi

summary="Redocly $redocly_errors errors, $redocly_warnings warnings;"
summary+=" Spectral $spectral_errors errors, $spectral_warnings warnings"
if [ "$failed" != 0 ]; then
    echo "lint_openapi: FAILED: $spec: $summary" >&2
    exit 1
fi
echo "lint_openapi: $spec: $summary"
