@STRATA@ cat @FIXTURES@/big.region 0 >/dev/full
