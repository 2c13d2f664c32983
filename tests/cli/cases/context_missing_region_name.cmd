@STRATA@ context @FIXTURES@/store docs:0 nope:0
