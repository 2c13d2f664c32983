@STRATA@ context @FIXTURES@/store :1
