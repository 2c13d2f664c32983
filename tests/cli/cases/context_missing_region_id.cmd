@STRATA@ context @FIXTURES@/store 3:0
