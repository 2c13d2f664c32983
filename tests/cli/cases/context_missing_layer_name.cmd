@STRATA@ context @FIXTURES@/store docs:0 notes:nope
