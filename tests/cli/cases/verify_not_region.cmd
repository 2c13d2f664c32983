@STRATA@ verify @FIXTURES@/notregion.txt
