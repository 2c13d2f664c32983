@STRATA@ metrics --json @FIXTURES@/store
