@STRATA@ ls --json @FIXTURES@/empty.region
