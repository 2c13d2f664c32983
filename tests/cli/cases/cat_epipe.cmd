@STRATA@ cat @FIXTURES@/big.region 0 | head -c 5
