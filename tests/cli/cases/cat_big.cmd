@STRATA@ cat @FIXTURES@/big.region blob | cksum
