@STRATA@ context --json @FIXTURES@/store docs:0 docs:99
