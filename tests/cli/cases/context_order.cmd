@STRATA@ context @FIXTURES@/store notes:todo docs:0 notes:todo
