@STRATA@ context --text @FIXTURES@/store docs:0
