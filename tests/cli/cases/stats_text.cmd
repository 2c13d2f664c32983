@STRATA@ stats @FIXTURES@/store | sed -E 's/ of [0-9]+ / of LIMIT /'
