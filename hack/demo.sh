#!/usr/bin/env bash
# make demo: a lab of six nodes in three clusters (network namespaces), `terraform apply` of
# examples/scenarios/multicluster-vxlan, a ping from a pod in cluster 1 to pods in clusters 2
# and 3, and the plan after it (empty). `make demo-down` removes the lab.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces)" >&2; exit 1; }
root=$PWD
bin=$root/bin
dir=$root/.lab

if [ -f "$dir/lab.json" ]; then
  "$bin/nodenet-agent" lab down --dir "$dir" >/dev/null 2>&1 || true
fi
rm -rf "$dir"
"$bin/nodenet-agent" lab up --dir "$dir" --scenario multicluster

mkdir -p "$dir/tf"
cp "$dir/provider.tf" "$dir/tf/provider.tf"
cp examples/scenarios/multicluster-vxlan/main.tf "$dir/tf/main.tf"
cat > "$dir/terraformrc" <<RC
provider_installation {
  dev_overrides {
    "registry.terraform.io/nodenet/nodenet" = "$bin"
  }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE=$dir/terraformrc TF_IN_AUTOMATION=1
cd "$dir/tf"

echo
echo "== terraform apply"
terraform apply -auto-approve -input=false -no-color -compact-warnings

pod1=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["hosts"][0]["pod_ns"])' "$dir/lab.json")
echo
echo "== from the pod behind multicluster-test-001 (10.234.111.2, test-cluster1)"
fail=0
for target in "10.235.88.2 pod on multicluster-test-003 (test-cluster2)" "10.236.115.2 pod on multicluster-test-005 (test-cluster3)" "179.17.1.13 overlay address of multicluster-test-006"; do
  ip=${target%% *}
  if out=$(ip netns exec "$pod1" ping -c 2 -W 2 "$ip"); then
    echo "ping $target: $(echo "$out" | grep -o '[0-9]* received'), $(echo "$out" | grep -o 'rtt.*')"
  else
    echo "ping $target: FAILED"; fail=1
  fi
done

echo
echo "== terraform plan (expect no changes)"
set +e
terraform plan -detailed-exitcode -input=false -no-color -compact-warnings >plan.out 2>&1
rc=$?
set -e
grep -E 'No changes|Plan:' plan.out || cat plan.out
echo
echo "lab left running in $dir; explore with: ip netns exec $pod1 ping 10.235.113.2 ; make demo-down to remove it"
[ $rc = 0 ] && [ $fail = 0 ]
