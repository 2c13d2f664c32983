#!/usr/bin/env bash
# Two publishers (docs/REMOTE.md, "The lock"):
# - a lock held elsewhere (taken with `rados lock get`, as another
#   publisher's lock looks on the OSD): a push fails with "locked by" and
#   the holder's description, HEAD does not move; `strata remote unlock`
#   breaks the lock naming it, and the push then publishes;
# - two pushes of different stores started together, several times: each
#   either publishes or fails with "locked by ... pid=<the other's pid>",
#   HEAD moves once per publish, and a pull gets exactly the store of the
#   last publish (whether the two overlap is up to the scheduler; what is
#   asserted holds either way);
# (A holder killed with SIGKILL, and unlock after it: remote_kill_publisher.)
#   two_pushers.sh STRATA REGION_BUILDER WORK
. "$(dirname "$0")/lib.sh"
push() { "$STRATA" push "$1" --remote "$REMOTE" --conf "$CONF" --chunk-size 1M; }

make_region "$WORK/A" big 1 big 16000000 16000000 16000000 16000000
make_region "$WORK/B" small 1 small 1000
make_region "$WORK/C" third 1 third 2000
run_ok out push "$WORK/C"
expect_line out "$REMOTE: published version 1 (1 regions, $(file_bytes "$WORK/C" third.region) bytes uploaded)"

note "a lock held elsewhere"
before=$(head_version)
rados_ns lock get head strata.publish --lock-type exclusive \
  --lock-cookie "c0ffee client.9 host=elsewhere pid=4242" \
  --lock-duration 600 || fail "rados lock get failed"
run_fails err push "$WORK/B"
expect_text err "$REMOTE: locked by client.9 host=elsewhere pid=4242"
[ "$(head_version)" = "$before" ] || fail "HEAD moved under a refused push"
run_ok out "$STRATA" remote unlock "$REMOTE" --conf "$CONF"
expect_text out "$REMOTE: broke the lock of "
expect_text out "pid=4242"
run_ok out push "$WORK/B"
expect_text out "$REMOTE: published version $((before + 1)) ("

note "two pushes at once, 5 times"
for round in 1 2 3 4 5; do
  before=$(head_version)
  # Each round pushes the store the last one did not publish, so that
  # both pushes have something to publish.
  # Not through push(): $! must be strata's own pid, which the lock
  # error names.
  "$STRATA" push "$WORK/A" --remote "$REMOTE" --conf "$CONF" --chunk-size 1M \
    >pA.out 2>pA.err &
  pa=$!
  "$STRATA" push "$WORK/B" --remote "$REMOTE" --conf "$CONF" --chunk-size 1M \
    >pB.out 2>pB.err &
  pb=$!
  ra=0 rb=0
  wait "$pa" || ra=$?
  wait "$pb" || rb=$?
  published=0 last=
  for who in A B; do
    if [ "$who" = A ]; then rc=$ra other=$pb; else rc=$rb other=$pa; fi
    if [ "$rc" = 0 ]; then
      if grep -q "published version" "p$who.out"; then
        published=$((published + 1))
        last=$who
      else
        expect_text "p$who.out" "already at version"
      fi
    else
      [ "$rc" = 1 ] || fail "push $who exited $rc: $(cat "p$who.err")"
      expect_text "p$who.err" "$REMOTE: locked by "
      expect_text "p$who.err" "pid=$other"
    fi
  done
  # Neither published only when one found its store at HEAD already (and
  # held the lock while it looked) and the other was locked out.
  if ((published == 0)) && ! grep -qh "already at version" pA.out pB.out; then
    fail "round $round: neither push published: A: $(cat pA.out pA.err) B: $(cat pB.out pB.err)"
  fi
  [ "$(head_version)" = $((before + published)) ] ||
    fail "round $round: HEAD is $(head_version), expected $((before + published))"
  run_ok out "$STRATA" pull "$WORK/F" --remote "$REMOTE" --conf "$CONF"
  if [ "$published" = 1 ]; then
    same_store "$WORK/$last" "$WORK/F"
  fi
done

note "unlock with no lock held"
run_ok out "$STRATA" remote unlock "$REMOTE" --conf "$CONF"
expect_line out "$REMOTE: not locked"
before=$(head_version)
run_ok out push "$WORK/C"
expect_text out "$REMOTE: published version $((before + 1)) ("
run_ok out "$STRATA" pull "$WORK/F" --remote "$REMOTE" --conf "$CONF"
same_store "$WORK/C" "$WORK/F"
echo "ok"
