#!/usr/bin/env bash
# terraform validate of every example against the provider built here (dev_overrides, offline),
# so the examples that the docs show cannot drift from the schema.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/bin/terraform-provider-nodenet" .
cat > "$tmp/terraformrc" <<RC
provider_installation {
  dev_overrides {
    "registry.terraform.io/nodenet/nodenet" = "$tmp/bin"
  }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE=$tmp/terraformrc CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
fail=0
# The whole tree, so that scenarios find the modules at their relative paths.
mkdir -p "$tmp/work"
cp -r examples "$tmp/work/"
for dir in examples/provider examples/resources/* examples/data-sources/* examples/modules/* examples/scenarios/*; do
  work=$tmp/work/$dir
  if ! grep -q required_providers "$work"/*.tf; then
    printf 'terraform {\n  required_providers {\n    nodenet = { source = "nodenet/nodenet" }\n  }\n}\n' > "$work/versions.tf"
  fi
  if grep -q '^module ' "$work"/*.tf && ! (cd "$work" && terraform get -no-color >/dev/null 2>&1); then
    echo "FAIL $dir: terraform get"; fail=1; continue
  fi
  if out=$(cd "$work" && terraform validate -no-color -compact-warnings 2>&1); then
    echo "ok   $dir"
  else
    echo "FAIL $dir"; echo "$out" | grep -v -e 'dev_overrides' -e '^$' | sed 's/^/     /'; fail=1
  fi
done
exit $fail
