cp @FIXTURES@/big.region t.region && chmod u+w t.region && ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 LD_PRELOAD=@SHIM@ STRATA_SHIM_TRUNCATE_TO=0 @STRATA@ verify t.region
