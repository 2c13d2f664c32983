@STRATA@ inspect @FIXTURES@/notregion.txt
