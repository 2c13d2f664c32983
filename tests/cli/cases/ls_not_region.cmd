@STRATA@ ls @FIXTURES@/notregion.txt
