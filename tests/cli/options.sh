#!/usr/bin/env bash
# `xsktun up`'s enum-valued options take their words only, and the wg-quick invocation's
# XSKTUN_MODE the same words; a wrong word exits 2 naming the words, before anything is created.
# No root needed: every case fails in option parsing.
set -uo pipefail
XSKTUN=${1:?usage: options.sh PATH/TO/xsktun}
fail=0
# expect_refused WHAT WANT_TEXT CMD...: exit status 2 (XSKTUN_MODE) or CLI11's, and the text.
expect_refused() {
  local what=$1 want=$2 out rc
  shift 2
  out=$("$@" 2>&1)
  rc=$?
  if ((rc == 0)) || [[ $out != *"$want"* ]]; then
    echo "FAIL: $what: exit $rc, output: $out" >&2
    fail=1
  else
    echo "ok: $what: $(head -1 <<<"$out")"
  fi
}
expect_refused "--mode 1 (an enum number)" "'1' is not one of {auto,socket,xdp}" "$XSKTUN" up xo0 --mode 1
expect_refused "--mode bogus" "'bogus' is not one of {auto,socket,xdp}" "$XSKTUN" up xo0 --mode bogus
expect_refused "--xdp-mode skb" "'skb' is not one of {auto,generic,native}" "$XSKTUN" up xo0 --xdp-mode skb
expect_refused "--zerocopy yes" "'yes' is not one of {auto,off,on}" "$XSKTUN" up xo0 --zerocopy yes
expect_refused "--io-threads 3" "'3' is not one of {1,2,auto}" "$XSKTUN" up xo0 --io-threads 3
expect_refused "XSKTUN_MODE=bogus" "XSKTUN_MODE: unknown mode 'bogus' {auto,socket,xdp}" \
  env XSKTUN_MODE=bogus "$XSKTUN" xo0
# The help shows each option's words and default.
help=$("$XSKTUN" up --help)
for want in "--mode ENUM:{auto,socket,xdp}=auto" "--xdp-mode ENUM:{auto,generic,native}=auto" \
  "--zerocopy ENUM:{auto,off,on}=auto" "--io-threads ENUM:{1,2,auto}=auto"; do
  if [[ $help != *"$want"* ]]; then
    echo "FAIL: up --help lacks '$want'" >&2
    fail=1
  fi
done
exit $fail
