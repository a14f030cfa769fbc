#!/bin/bash
# `wasmfw apply DIR` on the kernel engine, with a policy naming two
# interfaces (iface = ["vb", "vc"]): the first run loads both and real
# pings are dropped on both links, a second run changes nothing (same
# filter ids), --dry-run reports without acting, an edit that drops vc
# unloads it there only, a renamed policy is a replace, an empty directory
# unloads everything and ping works again; `wasmfw load` of a
# two-interface policy and `unload --all`.
# A second link between the same namespaces: va2 (wfa, 10.0.1.1) - vc (wfb, 10.0.1.2).
setup_extra() {
  veth_link wfa va2 10.0.1.1/24 wfb vc 10.0.1.2/24
  A ping -c 1 -W 2 10.0.1.2 >/dev/null || fail "no connectivity over the second veth pair"
}
test_apply() {
  dir=$(mktemp -d)
  policy() { # policy <file> <iface list>: icmp_drop at netfilter on those interfaces
    sed -e "s|^filter = .*|filter = \"$REPO/target/filters/icmp_drop.wasm\"|" \
        -e "s|^hook = .*|hook = \"netfilter\"|" -e "s|^iface = .*|iface = $2|" "$REPO/policies/icmp.toml" > "$dir/$1"
  }
  apply() { # apply [args]: wasmfw apply $dir --json; prints the number of changes
    local out
    out=$(wf apply "$dir" --json "$@") || fail "wasmfw apply $* failed: $out"
    echo "$out" | jq -c '.changes[] | [.action, .iface]' | sed 's/^/    /' >&2
    jq -r .changed <<< "$out"
  }
  ids() { wf status --json | jq -r '[.[] | select(.netns == "wfb") | "\(.iface)=\(.filter_id)"] | sort | join(" ")'; }
  received() { # received <dst>: echo replies to 3 pings from wfa
    local r; r=$(_ping -c 3 -i 0.2 -W 1 "$1"); echo "${r#* }"
  }

  policy icmp.toml '["vb", "vc"]'
  expect_eq "$(apply)" 2 "first apply: changes (load vb, load vc)"
  first=$(ids)
  say "attached: $first"
  [[ $first == "vb="[0-9]*" vc="[0-9]* ]] || fail "status after apply: $first"
  expect_eq "$(received 10.0.0.2)" 0 "echo replies over vb under the policy"
  expect_eq "$(received 10.0.1.2)" 0 "echo replies over vc under the policy"

  expect_eq "$(apply)" 0 "second apply: changes"
  expect_eq "$(ids)" "$first" "filters after the second apply (same ids: nothing reloaded)"

  policy icmp.toml '["vb"]'
  expect_eq "$(apply --dry-run)" 1 "dry run after dropping vc: changes reported"
  expect_eq "$(ids)" "$first" "filters after the dry run"
  expect_eq "$(apply)" 1 "apply after dropping vc: changes (unload vc)"
  expect_eq "$(ids)" "${first% *}" "filters after dropping vc"
  expect_eq "$(received 10.0.1.2)" 3 "echo replies over vc once unloaded there"
  expect_eq "$(received 10.0.0.2)" 0 "echo replies over vb, still filtered"
  expect_eq "$(apply)" 0 "apply again: changes"

  mv "$dir/icmp.toml" "$dir/renamed.toml"
  expect_eq "$(apply)" 1 "apply after renaming the policy: changes (replace on vb)"
  expect_eq "$(wf status --json | jq -r '.[] | select(.iface == "vb") | .policy')" "$dir/renamed.toml" "policy on vb"
  expect_eq "$(received 10.0.0.2)" 0 "echo replies over vb after the replace"

  rm "$dir/renamed.toml"
  expect_eq "$(apply)" 1 "apply of an empty directory: changes (unload vb)"
  expect_eq "$(ids)" "" "filters left in wfb"
  expect_eq "$(received 10.0.0.2)" 3 "echo replies over vb after the empty apply"

  # `wasmfw load` of the same two-interface policy, then `unload --all`.
  policy two.toml '["vb", "vc"]'
  wf load "$dir/two.toml" 2>&1 | sed 's/^/    /'
  [[ $(ids) == "vb="[0-9]*" vc="[0-9]* ]] || fail "status after loading a two-interface policy: $(ids)"
  expect_eq "$(received 10.0.1.2)" 0 "echo replies over vc after wasmfw load"
  wf unload --all 2>&1 | sed 's/^/    /'
  expect_eq "$(ids)" "" "filters left after unload --all"
  expect_eq "$(received 10.0.1.2)" 3 "echo replies over vc after unload --all"
  rm -rf "$dir"
}
