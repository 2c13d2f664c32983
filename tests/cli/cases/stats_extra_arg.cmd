@STRATA@ stats @FIXTURES@/store extra
